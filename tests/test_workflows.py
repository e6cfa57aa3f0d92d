"""The CI workflows in .github/workflows: parsed, their triggers, the make targets they call, Pages'
permissions, artifacts kept on failure, and the GPU runner's label set in one place."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
NAMES = ("ci.yml", "pages.yml", "gpu.yml", "release.yml", "linkcheck.yml", "colab.yml")
SCHEDULED_MINE = ("linkcheck.yml", "colab.yml")


def load(name: str) -> dict:
    data = yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))
    # YAML 1.1 reads the key `on` as True
    if True in data:
        data["on"] = data.pop(True)
    return data


def steps(workflow: dict) -> list[dict]:
    return [s for job in workflow["jobs"].values() for s in job.get("steps", [])]


def make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([A-Za-z0-9_.-]+)\s*:(?!=)", text, re.M))


@pytest.mark.parametrize("name", NAMES)
def test_parses_with_jobs_and_steps(name):
    wf = load(name)
    assert wf.get("name") and wf.get("on") and wf.get("jobs"), name
    for job_id, job in wf["jobs"].items():
        assert "runs-on" in job, f"{name}: job {job_id} has no runs-on"
        assert job.get("steps"), f"{name}: job {job_id} has no steps"
        for step in job["steps"]:
            assert ("uses" in step) != ("run" in step), f"{name}: a step needs exactly one of uses/run: {step}"


@pytest.mark.parametrize("name", NAMES)
def test_every_make_target_called_exists(name):
    targets = make_targets()
    called = [t for s in steps(load(name)) for t in re.findall(r"\bmake\s+([A-Za-z0-9_.-]+)", s.get("run", ""))]
    if name == "colab.yml":   # runs in Colab's own image, as a reader does: no venv, no make
        assert not called
        return
    assert called, f"{name} calls no make target"
    missing = [t for t in called if t not in targets]
    assert not missing, f"{name} calls make targets the Makefile lacks: {missing}"


def test_ci_runs_the_readme_test_command_on_push_and_pull_request():
    wf = load("ci.yml")
    assert "push" in wf["on"] and "pull_request" in wf["on"]
    runs = " ".join(s.get("run", "") for s in steps(wf))
    assert re.search(r"\bmake test\b", runs)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "make test" in readme


def test_ci_python_and_pip_cache():
    setup = [s for s in steps(load("ci.yml")) if s.get("uses", "").startswith("actions/setup-python@")]
    assert setup, "ci.yml does not set up Python"
    w = setup[0]["with"]
    assert str(w["python-version"]) == "3.11"
    assert w.get("cache") == "pip" and "requirements.txt" in w.get("cache-dependency-path", "")


def test_ci_keeps_html_executed_notebooks_and_ledgers_even_on_failure():
    uploads = [s for s in steps(load("ci.yml")) if s.get("uses", "").startswith("actions/upload-artifact@")]
    paths = " ".join(s["with"]["path"] for s in uploads)
    for needed in ("_build/html", "_build/executed", "_build/failed", "_build/ledgers"):
        assert needed in paths, f"ci.yml does not upload {needed}"


@pytest.mark.parametrize("name", NAMES)
def test_artifact_uploads_run_always(name):
    for step in steps(load(name)):
        if step.get("uses", "").startswith("actions/upload-artifact@"):
            assert str(step.get("if", "")).replace(" ", "") == "always()", f"{name}: {step.get('name')} lacks if: always()"


def test_pages_builds_from_main_and_deploys_with_the_right_permissions():
    wf = load("pages.yml")
    assert wf["on"]["push"]["branches"] == ["main"]
    perms = wf.get("permissions", {})
    assert perms.get("pages") == "write" and perms.get("id-token") == "write" and perms.get("contents") == "read"
    assert wf.get("concurrency", {}).get("group")
    uses = [s.get("uses", "") for s in steps(wf)]
    assert any(u.startswith("actions/upload-pages-artifact@") for u in uses)
    assert any(u.startswith("actions/deploy-pages@") for u in uses)
    runs = " ".join(s.get("run", "") for s in steps(wf))
    assert re.search(r"\bmake book\b", runs)
    artifact = next(s for s in steps(wf) if s.get("uses", "").startswith("actions/upload-pages-artifact@"))
    assert artifact["with"]["path"] == "_build/html"
    deploy = next(j for j in wf["jobs"].values()
                  if any(s.get("uses", "").startswith("actions/deploy-pages@") for s in j["steps"]))
    assert deploy.get("needs") and deploy["environment"]["name"] == "github-pages"


def test_gpu_workflow_weekly_and_on_demand_on_one_runner_label():
    wf = load("gpu.yml")
    assert "workflow_dispatch" in wf["on"]
    crons = [entry["cron"] for entry in wf["on"]["schedule"]]
    assert len(crons) == 1 and crons[0].split()[2:4] == ["*", "*"] and crons[0].split()[4] != "*", \
        "the GPU check runs weekly (one day of the week)"
    text = (WORKFLOWS / "gpu.yml").read_text(encoding="utf-8")
    assert text.count("vars.GPU_RUNNER_LABEL") == 1, "the runner label is read in one place"
    labels = [job["runs-on"] for job in wf["jobs"].values()]
    assert all("self-hosted" in lab for lab in labels)
    assert sum("vars.GPU_RUNNER_LABEL" in str(lab) for lab in labels) == 1
    runs = " ".join(s.get("run", "") for s in steps(wf))
    assert re.search(r"\bmake test-gpu\b", runs)
    uploads = [s for s in steps(wf) if s.get("uses", "").startswith("actions/upload-artifact@")]
    assert any("_build/gpu" in s["with"]["path"] for s in uploads)


def test_ci_reexecutes_the_chapters_nbval_failed_so_the_artifact_holds_them():
    wf = load("ci.yml")
    rerun = [s for s in steps(wf) if str(s.get("if", "")).replace(" ", "") == "failure()"]
    assert rerun and any("python -m book run" in s.get("run", "") and "FAILED notebooks/" in s.get("run", "")
                         for s in rerun), "no step re-executes the chapters that failed under nbval"
    names = [s.get("name", "") for s in steps(wf)]
    assert names.index(rerun[0]["name"]) < max(i for i, s in enumerate(steps(wf))
                                              if s.get("uses", "").startswith("actions/upload-artifact@"))


def test_the_build_is_nitpicky_and_warnings_fail_it():
    config = (ROOT / "_config.yml").read_text(encoding="utf-8")
    assert re.search(r"^\s+nitpicky: true$", config, re.M), "sphinx -n (nitpicky) is off"


def test_pages_builds_the_pdf_and_knows_its_tags():
    wf = load("pages.yml")
    runs = [s.get("run", "") for s in steps(wf)]
    assert any(re.search(r"\bmake pdf\b", r) for r in runs)
    uses = [s.get("uses", "") for s in steps(wf)]
    i_pdf = next(i for i, r in enumerate(runs) if "make pdf" in r)
    i_upload = next(i for i, u in enumerate(uses) if u.startswith("actions/upload-pages-artifact@"))
    assert i_pdf < i_upload, "the PDF must be in the published site"
    checkout = next(s for s in steps(wf) if s.get("uses", "").startswith("actions/checkout@"))
    assert checkout.get("with", {}).get("fetch-depth") == 0, "tags are needed to name the edition"


def test_a_tag_releases_the_html_archive_the_pdf_and_the_notebooks():
    wf = load("release.yml")
    assert wf["on"]["push"]["tags"] == ["v*"]
    assert wf["permissions"]["contents"] == "write"
    text = (WORKFLOWS / "release.yml").read_text(encoding="utf-8")
    for needed in ("make pdf", "-html.zip", "-notebooks.zip", ".pdf", "gh release create", "BOOK_EDITION"):
        assert needed in text, f"release.yml lacks {needed!r}"
    assert "--no-execute" in text, "an edition shows the committed pages, not a fresh quick run"


@pytest.mark.parametrize("name", SCHEDULED_MINE)
def test_scheduled_workflows_open_an_issue_when_they_fail(name):
    wf = load(name)
    assert wf["on"].get("schedule"), f"{name} is not scheduled"
    assert wf.get("permissions", {}).get("issues") == "write", f"{name} cannot open issues"
    text = (WORKFLOWS / name).read_text(encoding="utf-8")
    assert "gh issue create" in text and "failure()" in text and "github.event_name == 'schedule'" in text


def test_linkcheck_checks_the_book_and_the_data_files():
    runs = " ".join(s.get("run", "") for s in steps(load("linkcheck.yml")))
    assert re.search(r"\bmake linkcheck\b", runs)
    from book.tools import linkcheck

    assert "source" in linkcheck.data_links.__doc__ and linkcheck.html_links.__doc__


def test_colab_check_runs_in_colabs_image_on_the_gpu_runner_for_every_chapter():
    wf = load("colab.yml")
    job = wf["jobs"]["colab"]
    assert job["container"]["image"].startswith("us-docker.pkg.dev/colab-images/public/runtime")
    assert "--gpus all" in job["container"].get("options", "")
    assert "self-hosted" in job["runs-on"] and any("GPU_RUNNER_LABEL" in str(x) for x in job["runs-on"])
    from book.core.registry import CHAPTERS

    assert sorted(job["strategy"]["matrix"]["chapter"]) == sorted(CHAPTERS)
    assert "book.tools.colab check" in " ".join(s.get("run", "") for s in job["steps"])


def test_make_has_one_command_for_the_pdf_and_one_for_the_links():
    assert {"pdf", "linkcheck"} <= make_targets()


def test_linkcheck_tells_a_dead_link_from_a_live_one_and_reads_the_data_files(tmp_path):
    import http.server
    import threading

    from book.tools import linkcheck

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self):
            self.send_response(200 if self.path == "/live" else 403 if self.path == "/wall" else 404)
            self.end_headers()

        do_GET = do_HEAD

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        assert linkcheck.check(base + "/live", timeout=5)[0] == "ok"
        assert linkcheck.check(base + "/gone", timeout=5, tries=1) == ("dead", "HTTP 404")
        assert linkcheck.check(base + "/wall", timeout=5)[0] == "blocked"
    finally:
        server.shutdown()
    (tmp_path / "rows.csv").write_text("# a comment\nname,price_source,spec_source\n"
                                       "a,\"shop https://example.org/a, 2024\",whitepaper p. 3\n",
                                       encoding="utf-8")
    found, unlinked = linkcheck.data_links(tmp_path)
    assert list(found) == ["https://example.org/a"] and unlinked == 1
    assert list(found["https://example.org/a"])[0].endswith("rows.csv:3")
    text = linkcheck.report({"https://example.org/a": ("dead", "HTTP 404")}, found, unlinked)
    assert "1 dead of 1" in text and "rows.csv:3" in text
