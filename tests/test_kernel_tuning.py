"""Launch choices that depend on the grid, the dtype and n (kernels/tuning.py and the launchers)."""

from mhc_course.kernels import coefficients_bwd, coefficients_fwd, tuning


def test_coefficients_blocks_depend_on_whether_the_grid_is_one_wave(monkeypatch):
    monkeypatch.setattr(tuning, "multiprocessors", lambda: 132)
    tuning._blocks.cache_clear()
    try:
        one_wave = tuning._blocks("coefficients_fwd", 4, 2048, 8192, False, "{}")  # 128 programs of 64 tokens
        two_waves = tuning._blocks("coefficients_fwd", 4, 2048, 16384, False, "{}")
        unknown = tuning._blocks("coefficients_fwd", 4, 2048, None, False, "{}")
        mine = '{"coefficients_fwd_one_wave": [64, 64, 32, 4]}'
        override = tuning._blocks("coefficients_fwd", 4, 2048, 8192, False, mine)
        base = '{"coefficients_fwd": [64, 256, 32, 8]}'  # as profile_kernels.py writes it: every T
        base_one_wave = tuning._blocks("coefficients_fwd", 4, 2048, 8192, False, base)
    finally:
        tuning._blocks.cache_clear()
    assert one_wave == tuning._GPU["coefficients_fwd_one_wave"] != two_waves == tuning._GPU["coefficients_fwd"]
    assert unknown == two_waves and override == (64, 64, 32, 4) and base_one_wave == (64, 256, 32, 8)


def test_pipeline_depths(monkeypatch):
    monkeypatch.setattr(tuning, "multiprocessors", lambda: 132)
    assert coefficients_fwd.projection_stages(2, 4, 128) == 5
    assert coefficients_fwd.projection_stages(2, 4, 256) == 3  # two programs per multiprocessor
    assert coefficients_fwd.projection_stages(4, 4, 128) == 3  # float32 tiles: five stages not measured
    assert coefficients_fwd.projection_stages(2, 8, 128) == 3  # n = 8: φ's 128 padded columns
    assert coefficients_bwd.loop_stages(2, 4) == 3 and coefficients_bwd.loop_stages(2, 1) == 3
    assert coefficients_bwd.loop_stages(4, 4) is None and coefficients_bwd.loop_stages(2, 8) is None
