"""book.chapters.conv: both convolutions against scipy, and the helpers behind each claim."""
import numpy as np
import pytest
import scipy.signal

from book.chapters import conv


def _random_shapes(rng, ndim, count):
    for _ in range(count):
        yield tuple(int(n) for n in rng.integers(1, 12, ndim)), tuple(int(n) for n in rng.integers(1, 12, ndim))


@pytest.mark.parametrize("ndim", [1, 2, 3])
@pytest.mark.parametrize("algorithm", [conv.direct_convolve, conv.fft_convolve])
def test_matches_scipy_on_random_shapes(ndim, algorithm):
    rng = np.random.default_rng(ndim)
    checked = 0
    for shape_a, shape_b in _random_shapes(rng, ndim, 60):
        a, b = rng.standard_normal(shape_a), rng.standard_normal(shape_b)
        for mode in conv.MODES:
            try:
                expected = scipy.signal.convolve(a, b, mode=mode, method="direct")
            except ValueError:
                with pytest.raises(ValueError, match="valid"):
                    algorithm(a, b, mode)
                continue
            got = algorithm(a, b, mode)
            assert got.shape == expected.shape, (shape_a, shape_b, mode)
            np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)
            checked += 1
    assert checked > 100


@pytest.mark.parametrize("shape_a,shape_b", [((7,), (8,)), ((8,), (7,)), ((4, 9), (9, 4)), ((3, 3), (10, 12)),
                                             ((16, 16), (16, 16)), ((1, 1), (5, 5)), ((6, 5), (1, 1))])
@pytest.mark.parametrize("mode", conv.MODES)
def test_odd_even_and_kernel_larger_than_input(shape_a, shape_b, mode):
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal(shape_a), rng.standard_normal(shape_b)
    try:
        expected = scipy.signal.convolve(a, b, mode=mode)
    except ValueError:
        for algorithm in (conv.direct_convolve, conv.fft_convolve):
            with pytest.raises(ValueError):
                algorithm(a, b, mode)
        return
    for algorithm in (conv.direct_convolve, conv.fft_convolve, conv.convolve):
        np.testing.assert_allclose(algorithm(a, b, mode), expected, atol=1e-10)


def test_integer_and_float32_inputs_follow_scipy_dtypes():
    a = np.arange(12).reshape(3, 4)
    b = np.ones((2, 2), dtype=np.int32)
    np.testing.assert_allclose(conv.direct_convolve(a, b), scipy.signal.convolve(a, b))
    assert conv.fft_convolve(a.astype(np.float32), b.astype(np.float32)).dtype == np.float32
    assert conv.direct_convolve(a, b).dtype == np.float64


@pytest.mark.parametrize("a,b,mode,error,match", [
    (np.ones(3), np.ones((3, 3)), "full", ValueError, "same number of dimensions"),
    (np.ones(3), np.ones(3), "circular", ValueError, "mode must be"),
    (np.ones((5, 2)), np.ones((2, 5)), "valid", ValueError, "valid"),
    (np.ones(0), np.ones(3), "full", ValueError, "empty"),
    (np.ones(3) * 1j, np.ones(3), "full", TypeError, "complex"),
    (np.array(["a", "b"]), np.ones(2), "full", TypeError, "numeric"),
])
def test_bad_inputs_are_rejected_clearly(a, b, mode, error, match):
    for algorithm in (conv.direct_convolve, conv.fft_convolve, conv.convolve):
        with pytest.raises(error, match=match):
            algorithm(a, b, mode)


def test_unknown_method_rejected():
    with pytest.raises(ValueError, match="method"):
        conv.convolve(np.ones(3), np.ones(3), method="winograd")


def test_output_shape_of_the_posts_example():
    assert conv.output_shape((256, 256), (16, 16), "valid") == (241, 241)
    assert conv.output_shape((256, 256), (16, 16), "full") == (271, 271)
    assert conv.output_shape((256, 256), (16, 16), "same") == (256, 256)


def test_cost_model_prefers_direct_for_tiny_kernels_and_fft_for_huge():
    model = conv.DEFAULT_COST_MODEL
    assert model.choose((512, 512), (3, 3)) == "direct"
    assert model.choose((512, 512), (129, 129)) == "fft"


def test_patch_at_equals_the_convolution_pixel():
    rng = np.random.default_rng(2)
    image, kernel = rng.standard_normal((9, 9)), rng.standard_normal((3, 3))
    same = conv.direct_convolve(image, kernel, "same")
    assert conv.patch_at(image, kernel, 4, 5) == pytest.approx(same[4, 5])
    with pytest.raises(ValueError, match="border"):
        conv.patch_at(image, kernel, 0, 0)


def test_softmax_of_the_edge_detector():
    k = conv.softmax_kernel(np.array([[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]]))
    assert k.sum() == pytest.approx(1.0)
    assert k[1, 1] == pytest.approx(np.exp(8) / (np.exp(8) + 8 * np.exp(-1)))


def test_spectrum_orientation_recovers_stripe_angles():
    for angle in (0.0, 20.0, 37.0, 90.0, 135.0):
        measured = conv.spectrum_orientation(conv.stripes(128, 8, angle))
        assert min(abs(measured - angle), 180 - abs(measured - angle)) < 2.0


def test_lowpass_keeps_the_asked_fraction_and_keep_all_is_identity():
    rng = np.random.default_rng(3)
    image = rng.standard_normal((32, 40))
    out, kept = conv.lowpass(image, 0.1)
    assert kept == pytest.approx(0.1, abs=0.02)
    full, kept_all = conv.lowpass(image, 1.0)
    assert kept_all == 1.0
    np.testing.assert_allclose(full, image, atol=1e-12)
    with pytest.raises(ValueError):
        conv.lowpass(image, 0.0)


def test_heat_propagator_is_the_exact_solution_and_euler_converges_to_it():
    blobs = [(2.0, 0.0, 1.5, 1.0), (-3.0, 1.0, 1.0, 0.5)]
    errors = []
    for h in (1.0, 0.5):
        r = np.arange(-16, 16 + h / 2, h)
        x, y = np.meshgrid(r, r, indexing="ij")
        u0, exact = conv.gaussian_blobs(x, y, blobs), conv.gaussian_blobs(x, y, blobs, t=2.0)
        by_convolution = conv.fft_convolve(u0, conv.heat_propagator(2.0, spacing=h), "same")
        assert np.abs(by_convolution - exact).max() < 1e-5
        errors.append(np.abs(conv.heat_euler(u0, 2.0, h * h / 8, spacing=h)[0] - exact).max())
    assert errors[1] < errors[0] / 3  # second order in h with dt ∝ h²
    with pytest.raises(ValueError, match="stability"):
        conv.heat_euler(u0, 1.0, 0.5)


def test_stochastic_convolution_is_unbiased():
    rng = np.random.default_rng(4)
    image = rng.random((12, 12))
    kernel = conv.gaussian_kernel(3, 1.0)
    estimate = conv.stochastic_convolve(image, kernel, 4000, rng)
    np.testing.assert_allclose(estimate, conv.direct_convolve(image, kernel, "same"), atol=0.03)
    with pytest.raises(ValueError, match="probability"):
        conv.stochastic_convolve(image, -kernel, 10, rng)


def test_cross_correlation_and_template_matching():
    rng = np.random.default_rng(5)
    a, b = rng.standard_normal((10, 12)), rng.standard_normal((3, 4))
    np.testing.assert_allclose(conv.cross_correlate(a, b), scipy.signal.correlate(a, b), atol=1e-12)
    image = rng.random((40, 50))
    assert conv.match_template(image, image[12:20, 30:41]) == (12, 30)


def test_time_series_models_are_convolutions():
    rng = np.random.default_rng(6)
    x, w = rng.standard_normal(200), np.array([0.5, 0.3, 0.2])
    np.testing.assert_allclose(conv.moving_average(x, w), scipy.signal.lfilter(w, [1.0], x), atol=1e-12)
    phi = np.array([0.6, -0.2])
    h = conv.autoregressive_impulse_response(phi, 200)
    np.testing.assert_allclose(conv.moving_average(x, h), scipy.signal.lfilter([1.0], [1.0, -0.6, 0.2], x),
                               atol=1e-10)


def test_whitening_gives_identity_covariance():
    rng = np.random.default_rng(7)
    data = rng.standard_normal((500, 3)) @ np.array([[2.0, 0.5, 0.0], [0.0, 1.0, 0.3], [0.0, 0.0, 0.2]])
    np.testing.assert_allclose(np.cov(conv.whiten(data), rowvar=False), np.eye(3), atol=1e-10)
    with pytest.raises(ValueError, match="singular"):
        conv.whiten(np.c_[data[:, :1], data[:, :1]])


def test_full_output_total_is_image_total_times_kernel_sum_and_same_loss_is_predicted():
    rng = np.random.default_rng(3)
    image = rng.random((40, 50))
    for kernel in (np.ones((3, 3)) / 9, np.array([[1, 0, 1], [0, 1, 0], [1, 0, 1]]) / 9, rng.normal(size=(3, 5))):
        assert conv.total_after(image, kernel, "full") == pytest.approx(image.sum() * kernel.sum(), rel=1e-12, abs=1e-9)
        predicted = (conv.same_mode_share(image.shape, kernel) * image).sum()
        assert conv.total_after(image, kernel, "same") == pytest.approx(predicted, rel=1e-12, abs=1e-9)
    share = conv.same_mode_share((5, 5), np.ones((3, 3)) / 9)
    assert share[2, 2] == pytest.approx(1) and share[0, 2] == pytest.approx(2 / 3) and share[0, 0] == pytest.approx(4 / 9)


def test_blur_profile_passes_gaussians_and_fails_other_kernels():
    image = np.random.default_rng(0).random((64, 64))
    assert conv.blur_profile(np.outer([1, 2, 1], [1, 2, 1]) / 16, image).is_gaussian_blur()
    assert conv.blur_profile(conv.gaussian_kernel(5, 1.0), image).is_gaussian_blur()
    for kernel in (np.ones((3, 3)) / 9,                                         # flat
                   np.array([[0, 0, 0], [1, 1, 1], [0, 0, 0]]) / 3,             # one direction
                   np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], dtype=float),  # sharpens
                   np.pad([[1.0]], 1)):                                         # identity
        assert not conv.blur_profile(kernel, image).is_gaussian_blur()
    with pytest.raises(ValueError):
        conv.blur_profile(np.ones((2, 2)), image)


def test_euler_step_equals_scipy_laplacian_and_converges_at_second_order_on_a_large_grid():
    import scipy.ndimage as ndi

    blobs = [(2.0, 0.0, 1.5, 1.0), (4.0, -5.0, 2.0, 0.8)]
    errors = []
    for h in (0.5, 0.25):
        r = np.arange(-24, 24 + h / 2, h)
        x, y = np.meshgrid(r, r, indexing="ij")
        u0 = conv.gaussian_blobs(x, y, blobs)
        one, _ = conv.heat_euler(u0, h * h / 8, h * h / 8, spacing=h)
        assert np.abs(one - (u0 + ndi.laplace(u0, mode="constant") / 8)).max() < 1e-14
        u, _ = conv.heat_euler(u0, 1.0, h * h / 8, spacing=h)
        errors.append(np.abs(u - conv.gaussian_blobs(x, y, blobs, t=1.0)).max())
    assert np.log2(errors[0] / errors[1]) > 1.8


def test_softmax_propagator_of_the_edge_detector_returns_the_image():
    rng = np.random.default_rng(0)
    image = ndimage_smooth(rng.random((64, 64)))
    edge = np.array([[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]], dtype=float)
    r = conv.propagator_reading(image, edge)
    assert r.centre == pytest.approx(0.99901, abs=1e-5)
    assert r.neighbour == pytest.approx(1.233e-4, rel=1e-3)
    assert r.corr_with_image > 0.9999 > r.corr_with_edges
    assert r.top_overlap_image > r.top_overlap
    assert r.departure_residual < 1e-12  # output − image = −s · (edge ⊛ image), exactly


def ndimage_smooth(a):
    import scipy.ndimage as ndi

    return ndi.gaussian_filter(a, 2.0)


# -- the chapter's measurements (one per claim) ---------------------------------------------------
def _smooth_image(shape=(64, 64), seed=0):
    """A photograph stand-in: smoothed noise in [0, 1] (bright regions, edges)."""
    import scipy.ndimage as ndi

    u = ndi.gaussian_filter(np.random.default_rng(seed).random(shape), 3)
    return (u - u.min()) / (u.max() - u.min())


def test_intensity_kept_keeps_the_total_only_for_kernels_summing_to_the_divisor():
    image = _smooth_image()
    panel = {"box": np.ones((3, 3)), "X": np.array([[1, 0, 1], [0, 1, 0], [1, 0, 1]]),
             "edge": np.array([[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]])}
    kept = conv.intensity_kept(image, panel, divisor=9)
    assert kept.kept_rounded(4) == [1.0, 0.5556, 0.0]
    assert kept.changed == ["X", "edge"]
    assert kept.prediction_error < 1e-9
    assert kept.changed_text() == "the X keeps 56%, the edge keeps 0%"
    lines = kept.table().splitlines()
    assert len(lines) == 4 and lines[1].split()[:3] == ["box", "1.0000", "1.000000"]
    assert "-0.0" not in kept.table()


def test_fft_agreement_counts_only_defined_modes_and_agrees():
    image = _smooth_image((20, 24))
    first = conv.fft_agreement(np.random.default_rng(3), trials=5, image=image, kernel=np.ones((3, 3)))
    again = conv.fft_agreement(np.random.default_rng(3), trials=5, image=image, kernel=np.ones((3, 3)))
    assert first == again  # drawn from the generator only: seeded runs repeat
    assert 2 * 5 * 2 <= first.cases <= 2 * 5 * 3  # full and same always, valid where defined
    assert first.worst < 1e-10 and first.photo_error < 1e-10


def test_recovered_angle_reads_the_rotation_off_the_spectrum():
    pattern = conv.stripes(512, period=10)
    assert conv.rotate_crop(pattern, 37).shape == (256, 256)
    assert conv.recovered_angle(pattern, 37) == pytest.approx(37, abs=0.2)
    assert conv.recovered_angle(pattern, 0) == pytest.approx(0, abs=1e-9)


def test_lowpass_compression_keeps_the_stripes_exactly_while_the_disc_holds_the_fundamental():
    pattern = conv.stripes(128, period=16, angle_deg=30)
    compression = conv.lowpass_compression(pattern, _smooth_image((64, 80)), [0.2, 0.05, 0.005], 16)
    assert compression.fundamental_area == pytest.approx(np.pi / 256)
    assert compression.stripes_kept == [True, True, False]
    assert compression.as_predicted and compression.monotone
    assert compression.smallest_kept == 0.05
    assert compression.photo_error_at(0.2) == compression.errors["photo"][0]
    assert compression.table().splitlines()[3].split()[:3] == ["0.5", "False", "False"]


def test_heat_convergence_is_second_order_and_the_propagator_exact():
    blobs = [(2.0, 0.0, 1.5, 1.0), (-3.0, 1.0, 1.0, 0.5)]
    diffusion = conv.heat_convergence(blobs, t_end=1.0, half_width=20.0, spacings=[1.0, 0.5])
    assert [r[0] for r in diffusion.rows] == [1.0, 0.5] and diffusion.rows[1][1] == 32
    assert max(r[3] for r in diffusion.rows) < 1e-5
    assert diffusion.orders[0] > 1.8
    assert diffusion.step_error < 1e-12 and diffusion.edge_value < 1e-6
    assert "observed order of Euler's convergence in h: [" in diffusion.table()


def test_propagator_reading_summary_names_every_measurement():
    reading = conv.propagator_reading(_smooth_image(), np.array([[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]]))
    lines = reading.summary().splitlines()
    assert len(lines) == 4
    assert lines[0] == f"softmax kernel: centre {reading.centre:.4f}, each neighbour {reading.neighbour:.2e}"
    assert lines[3].endswith("< 1e-12")


def test_impulse_response_and_blur_table():
    quiz = np.outer([1, 2, 1], [1, 2, 1]) / 16
    spread = conv.impulse_response(quiz, size=7)
    np.testing.assert_allclose(spread[2:5, 2:5], quiz)
    assert spread.sum() == pytest.approx(1.0)
    image = _smooth_image()
    profiles = {"gauss": conv.blur_profile(quiz, image), "box": conv.blur_profile(np.ones((3, 3)) / 9, image)}
    table = conv.blur_table(profiles).splitlines()
    assert len(table) == 3 and table[1].split()[-1] == "True" and table[2].split()[-1] == "False"


def test_sampling_error_falls_as_one_over_root_samples():
    quiz = np.outer([1, 2, 1], [1, 2, 1]) / 16
    sampling = conv.sampling_error(_smooth_image((32, 32)), quiz, [1, 4, 16, 64], np.random.default_rng(0))
    assert len(sampling.rms) == 4 and all(a > b for a, b in zip(sampling.rms, sampling.rms[1:]))
    assert sampling.slope == pytest.approx(-0.5, abs=0.08)


def test_template_search_and_correlation_identity():
    assert conv.correlation_identity_error(np.random.default_rng(0)) < 1e-10
    image = np.random.default_rng(1).random((80, 90))  # unsmoothed: neighbouring patches differ
    search = conv.template_search(image, (20, 30, 25, 25), np.random.default_rng(0), noise=0.05)
    assert search.found == (20, 30)
    np.testing.assert_array_equal(search.template, image[20:45, 30:55])
    assert search.noisy.shape == image.shape and not np.array_equal(search.noisy, image)


def test_time_series_models_match_lfilter_and_whiten():
    rng = np.random.default_rng(0)
    series, correlated = rng.standard_normal(300), rng.standard_normal((300, 2)) @ [[2.0, 1.2], [0.0, 0.6]]
    models = conv.time_series_models(series, np.array([0.4, 0.3, 0.2, 0.1]), np.array([0.5, -0.3, 0.1]),
                                     correlated)
    assert max(models.errors) < 1e-9
    np.testing.assert_allclose(np.cov(models.white, rowvar=False), np.eye(2), atol=1e-9)


def test_kernel_sweep_crossover_and_cost_model_switch():
    sweep = conv.KernelSweep(256, [(3, 1.0, 2.0), (5, 1.0, 0.5), (7, 2.0, 0.1)])
    assert sweep.crossover == 5
    assert sweep.predicted() == 7  # the default cost model on a 256×256 image (the chapter's quick run)
    assert conv.KernelSweep(256, [(3, 1.0, 2.0)]).crossover is None
    timed = conv.time_kernel_sweep(_smooth_image((32, 32)), [3, 5], np.random.default_rng(0), repeats=1)
    assert [k for k, *_ in timed.timings] == [3, 5] and all(t > 0 for _, *ts in timed.timings for t in ts)


def test_both_ends_takes_the_weaker_side():
    ends = conv.BothEnds(small=(1.8, 1.7, 1.9), large=(36.0, 30.0, 40.0))
    assert ends.estimate == 1.8 and ends.interval == (1.7, 1.9)
    assert ends.summary().startswith("3×3: FFT takes ⟨1.80× direct's time [1.70, 1.90]⟩; 33×33")
    timed = conv.time_both_ends(_smooth_image((32, 32)), np.random.default_rng(0), rounds=2, small=3,
                                large=9, batch=1)
    assert timed.sides == (3, 9) and timed.small[1] <= timed.small[0] <= timed.small[2]


def test_figures_return_their_figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    image, edge = _smooth_image(), np.array([[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]], dtype=float)
    rng = np.random.default_rng(0)
    figures = {
        3: conv.figure_edge_and_blur(image, edge, np.ones((3, 3)) / 9),
        8: conv.figure_spectra(conv.stripes(512, period=10), conv.stripes(512, period=20), angles=(0, 37)),
        1: conv.figure_compression(conv.Compression([0.5, 0.1], 16, {"stripes": [0.1, 0.2],
                                                                     "photo": [0.1, 0.3]}, [True, True])),
        2: conv.figure_heat_convergence(conv.HeatConvergence(24.0, [(1.0, 16, 100, 1e-8, 1e-3),
                                                                    (0.5, 64, 800, 1e-8, 2.5e-4)], 0.0, 0.0)),
        4: conv.figure_sampling(conv.SamplingError([1, 4], [1.0, 0.5])),
        5: conv.figure_whitening(rng.standard_normal((50, 2)), rng.standard_normal((50, 2))),
        6: conv.figure_kernel_sweep(conv.KernelSweep(64, [(3, 1e-3, 2e-3), (5, 2e-3, 1e-3)])),
        7: conv.figure_template_search(conv.template_search(image, (10, 10, 20, 20), rng)),
        9: conv.figure_softmax_output(image, edge),
        10: conv.figure_lowpass(conv.stripes(64, period=16), image),
        11: conv.figure_diffusion(image, times=(0.0, 1.0, 2.0)),
    }
    expected_axes = {3: 3, 8: 8, 1: 1, 2: 1, 4: 1, 5: 2, 6: 1, 7: 3, 9: 3, 10: 3, 11: 3}
    for key, fig in figures.items():
        assert isinstance(fig, matplotlib.figure.Figure)
        assert len(fig.axes) == expected_axes[key], key
        plt.close(fig)
