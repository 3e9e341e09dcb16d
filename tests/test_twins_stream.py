"""Twin mining streams a video: memory holds one window of frames however long the clip, and the windows are
the shots (split at hard cuts) cut into ``max_frames`` pieces, as on the whole clip."""

from __future__ import annotations

import pytest
import torch

from mi_augment.video.cuts import iter_shot_windows
from mi_augment.video.tracking import shot_segments
from mi_augment.video.twins import MIN_STEPS, mine_shots, mine_windows

pytestmark = pytest.mark.usefixtures("one_thread_module", "one_thread")


def _frames(count: int, size: int = 48, cut_at: int | None = None):
    """Textured frames drifting one pixel per frame; a brighter scene from ``cut_at`` on (a hard cut)."""
    base = torch.Generator().manual_seed(0)
    scene = torch.randint(0, 200, (3, size, size + count), generator=base, dtype=torch.uint8)
    for t in range(count):
        frame = scene[:, :, t:t + size].clone()
        if cut_at is not None and t >= cut_at:
            frame = frame.flip(-1) // 4 + 180
        yield frame


class _Counting:
    """An iterator of frames that counts how many were taken from it."""

    def __init__(self, frames):
        self.frames, self.taken = iter(frames), 0

    def __iter__(self):
        return self

    def __next__(self):
        frame = next(self.frames)
        self.taken += 1
        return frame


def test_mining_holds_a_bounded_number_of_frames_however_long_the_clip():
    stream = _Counting(_frames(150))
    ahead = []
    for result, window in mine_windows(stream, 16, max_frames=12, cuts="auto", camera_motion="none"):
        start, stop = result.frame_range
        assert window.shape[0] == stop - start <= 12
        ahead.append(stream.taken - stop)  # frames read beyond the window being mined
    assert len(ahead) == 12 and stream.taken == 150
    assert max(ahead) <= 9  # the cut detector's look-ahead, not the rest of the clip


def test_windows_follow_shots_and_max_frames_as_on_the_whole_clip():
    clip = torch.stack(list(_frames(60, cut_at=25)))
    expected = []
    for a, b in shot_segments(clip, "auto", min_length=MIN_STEPS + 1):
        expected += [(s, min(b, s + 16)) for s in range(a, b, 16) if min(b, s + 16) - s >= MIN_STEPS + 1]
    assert expected[0] == (0, 16) and (25, 41) in expected
    streamed = [(a, b) for a, b, _ in iter_shot_windows(iter(clip), 16, "auto", min_length=MIN_STEPS + 1)]
    assert streamed == expected
    results = mine_shots(_frames(60, cut_at=25), 16, max_frames=16, camera_motion="none")
    assert [r.frame_range for r in results] == expected


def test_a_stream_mines_like_the_whole_tensor():
    clip = torch.stack(list(_frames(30)))
    whole = mine_shots(clip, 16, max_frames=15, camera_motion="none")
    streamed = mine_shots(_frames(30), 16, max_frames=15, camera_motion="none")
    assert [r.frame_range for r in streamed] == [r.frame_range for r in whole] == [(0, 15), (15, 30)]
    for a, b in zip(whole, streamed):
        assert torch.equal(a.twins, b.twins) and torch.allclose(a.mi, b.mi)


def test_stream_problems_are_clear_errors():
    with pytest.raises(ValueError, match="the video has 5 frame"):
        mine_shots(_frames(5), 16)
    with pytest.raises(ValueError, match="patch_size=64 is larger than the frame"):
        mine_shots(_frames(20), 64)
    with pytest.raises(ValueError, match=r"frame 0 of the video must be a \(C, H, W\) tensor"):
        mine_shots([torch.zeros(2, 3, 32, 32)] * 10, 16)
    with pytest.raises(ValueError, match="max_frames must be an integer >= 9"):
        mine_windows(_frames(20), 16, max_frames=4)
