"""The tools that run and publish the book: the command line (`cli`), the runner (`runner`: chapters
in order, the summary, storing evidence) and its parts (`params`: -p checked before any kernel;
`execute`: one chapter's run; `signals`: Ctrl-C, SIGTERM and the kernels' processes; `locks` and
`paths`: `_build`; `site`: staging and rendering the book), the scoreboard and status pages, the
Colab install cell, the GPU validation (`gpucheck`) and the full-mode re-execution (`fullcheck`)."""
