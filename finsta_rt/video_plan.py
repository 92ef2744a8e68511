"""Decoding only the packets a sampling needs (docs/runtime.md, "Decoding and sampling").

A packet scan (demuxing, no decoding) gives every packet's presentation time and keyframe flag in
decode order. Each target time then takes the packet whose presentation time is nearest (a tie goes
to the later one: the frame a one-pass decoder picks), and decoding covers, per chosen packet, the
packets from the keyframe before it up to it. Ranges that overlap or touch are decoded on in one go
(fewer packets than starting again at the later keyframe); a range that starts past the previous
one's end drains the decoder and starts afresh at its keyframe, by a seek when the gap is long,
else by demuxing and dropping the packets between. Nothing past the last chosen packet is decoded,
and only the chosen frames are handed on (to be converted). Packets inside a range that are not chosen
go to the decoder with ``skip_frame = NONREF``: a frame no other frame references is then not decoded
(B-frames of H.264/MPEG, VP8 frames that refresh no reference), which changes no other frame's pixels;
the reference frames among them are decoded as before.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

log = logging.getLogger(__name__)

# A gap of more than this many packets between two decode ranges is crossed by a seek rather than by
# demuxing and dropping the packets between (a seek costs about as much as demuxing a few dozen).
SEEK_GAP_PACKETS = 32
SEEK_TRIES = 3  # seeks per range before demuxing through from the start instead
MISSING_PTS = np.iinfo(np.int64).min
# A frame within 1 ns of a window's start or end counts as at it: the end, computed as start + duration, can
# round 1 ulp off the window's own end, and a frame exactly there would be in or out by rounding.
WINDOW_EDGE_S = 1e-9


class PlanFailed(Exception):
    """The file does not behave as its packet scan said (a chosen frame did not come out of the
    decoder, packets came in another order): the caller decodes in one pass instead."""


class SeekFailed(PlanFailed):
    """A seek failed or landed past its packet: the plan may still work demuxing through from the start."""


@dataclass(frozen=True)
class PacketTable:
    """The video stream's packets in decode order, from a scan that demuxes without decoding."""

    pts: np.ndarray  # int64 [N] presentation time stamps in time-base ticks (MISSING_PTS when absent)
    key: np.ndarray  # bool [N] keyframe flags
    end: float  # seconds: the latest pts + duration
    time_base: Fraction
    cut: bool  # the demuxer stopped with an error (a cut-off or damaged file)

    def __len__(self) -> int:
        return len(self.pts)

    @property
    def times(self) -> np.ndarray:
        """Seconds of each packet, computed as PyAV computes ``VideoFrame.time`` (bit for bit)."""
        return self.pts.astype(np.float64) * self.time_base.numerator / self.time_base.denominator

    @property
    def start(self) -> float:
        return float(self.times[self.pts != MISSING_PTS].min())

    @property
    def plannable(self) -> bool:
        """Every packet has a distinct pts: frames can be matched to packets by it."""
        return len(self.pts) > 0 and not (self.pts == MISSING_PTS).any() and len(np.unique(self.pts)) == len(self.pts)


def scan_packets(container, stream, check: Callable[[], None]) -> PacketTable:
    """Demuxes the whole video stream (no decoding). A demuxer error after some packets ends the table
    (``cut``); one before any packet is raised. ``check`` runs per packet (the time limit)."""
    import av

    pts: list[int] = []
    key: list[bool] = []
    end, cut = None, False  # in ticks: exact, converted once
    try:
        for pkt in container.demux(stream):
            check()  # a playlist of 60,000 entries took 88.9 s to demux without it
            if pkt.size == 0:  # the closing flush packet, or an empty one (Theora: "repeat the last frame")
                continue
            p = pkt.pts
            key.append(pkt.is_keyframe)
            if p is None:
                pts.append(MISSING_PTS)
                continue
            pts.append(p)
            e = p + (pkt.duration or 0)
            end = e if end is None or e > end else end
    except av.FFmpegError as e:
        check()  # the interrupt callback stopped a read: that is the timeout
        if not pts:
            raise
        log.warning("demuxing stopped after %d packets: %s", len(pts), e)
        cut = True
    tb = Fraction(stream.time_base)
    end = -np.inf if end is None else float(end * tb)
    return PacketTable(np.asarray(pts, np.int64), np.asarray(key, bool), end, tb, cut)


def nearest_packets(table: PacketTable, targets: np.ndarray) -> np.ndarray:
    """Index (decode order) of the packet nearest in presentation time to each target: the frame
    nearest to it, a tie going to the later frame; before the first frame the first, past the last
    the last. [T] int64."""
    times = table.times
    order = np.argsort(times, kind="stable")
    t = times[order]
    after = np.minimum(np.searchsorted(t, targets, side="left"), len(t) - 1)  # first frame at/after each
    before = np.maximum(after - 1, 0)
    earlier = (after > 0) & (t[after] >= targets) & (targets - t[before] < t[after] - targets)
    return order[np.where(earlier, before, after)]


def decode_ranges(table: PacketTable, chosen: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) packet indices, decode order, ascending and disjoint, that decode every chosen
    packet: each from the keyframe before it, whose own frame is shown no later (a leading frame of
    an open GOP needs the GOP before), decoding on when that keyframe is inside the previous range."""
    keys = np.flatnonzero(table.key)
    spans = []
    for c in np.unique(chosen):
        j = int(np.searchsorted(keys, c, side="right")) - 1
        while j >= 0 and table.pts[keys[j]] > table.pts[c]:
            j -= 1
        spans.append((int(keys[j]) if j >= 0 else 0, int(c)))
    ranges: list[tuple[int, int]] = []
    for first, last in sorted(spans):  # a leading frame's span may start before an earlier one's
        if ranges and first <= ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], max(ranges[-1][1], last))
        else:
            ranges.append((first, last))
    return ranges


def packets_decoded(ranges: list[tuple[int, int]]) -> int:
    return sum(b - a + 1 for a, b in ranges)


class _Demuxer:
    """The stream's packets with their decode-order index, checked against the table. Its position is
    unknown (None) until the first packet after opening or a seek says where the demuxer is."""

    def __init__(self, container, stream, table: PacketTable, check: Callable[[], None], pos: int | None):
        self.container, self.stream, self.table, self.check = container, stream, table, check
        self.index = {int(p): i for i, p in enumerate(table.pts)}
        self.keys = np.flatnonzero(table.key)
        self.packets: Iterator = container.demux(stream)
        self.pos = pos  # index of the packet self.packets yields next
        self.pending = None  # a packet read to learn the position: the next to hand out
        self.sought = pos is None  # the caller sought (to the start): packets may be cut otherwise

    def _read(self):
        for pkt in self.packets:
            self.check()
            if pkt.size == 0:  # not a frame (see scan_packets)
                continue
            return pkt
        raise PlanFailed(f"the stream ended at packet {self.pos} of {len(self.table)}")

    def _locate(self) -> None:
        pkt = self._read()
        landed = self.index.get(pkt.pts)
        if landed is None:
            raise SeekFailed(f"the demuxer is at pts {pkt.pts}, which the scan did not see")
        self.pos, self.pending = landed, pkt

    def next(self):
        if self.pos is None:
            self._locate()
        if self.pending is not None:
            pkt, self.pending = self.pending, None
        else:
            pkt = self._read()
            if self.pos >= len(self.table) or pkt.pts != self.table.pts[self.pos]:
                # after a seek some demuxers (MPEG-PS) cut packets otherwise: demuxing through may still agree
                failed = SeekFailed if self.sought else PlanFailed
                raise failed(f"packet {self.pos} has pts {pkt.pts}, the scan said otherwise")
        self.pos += 1
        return pkt

    def go_to(self, target: int, allow_seek: bool) -> None:
        """Positions the demuxer so that next() gives packet ``target``."""
        import av

        if self.pos is None:
            self._locate()
        if allow_seek and target - self.pos > SEEK_GAP_PACKETS:
            # Some demuxers land past the keyframe asked for (MPEG-PS finds times by bisecting the file):
            # ask again for the keyframes before it, then drop packets up to the target.
            keys = self.keys[: int(np.searchsorted(self.keys, target, side="right"))][::-1]
            for k in [target, *keys[keys < target][: SEEK_TRIES - 1]]:
                try:
                    self.container.seek(int(self.table.pts[k]), stream=self.stream, backward=True, any_frame=False)
                except av.FFmpegError as e:
                    raise SeekFailed(f"a seek to packet {k} failed ({e})") from e
                self.packets, self.pending, self.sought = self.container.demux(self.stream), None, True
                self._locate()
                if self.pos <= target:
                    break
        if self.pos > target:
            raise SeekFailed(f"the demuxer is at packet {self.pos}, past packet {target}")
        while self.pos < target:
            self.next()


def decode_planned(
    container,
    stream,
    table: PacketTable,
    ranges: list[tuple[int, int]],
    wanted: set[int],
    on_frame: Callable[[object], bool],
    check: Callable[[], None],
    allow_seek: bool = True,
    pos: int | None = None,
    strict: bool = False,
) -> int:
    """Decodes the packets of ``ranges``, those whose pts is not ``wanted`` with ``skip_frame = NONREF``
    (a non-reference frame nobody asked for is not decoded); every frame that comes out goes to
    ``on_frame``, which returns True once it holds all it needs. A packet the decoder refuses is skipped
    unless its pts is ``wanted`` or ``strict`` (frames are counted: a lost one shifts the count), else the
    plan fails. ``pos``: the index of the packet the demuxer gives next (0 for a fresh container), None to
    learn it from the first packet. Returns the number of frames that came out of the decoder. Raises
    PlanFailed when the file disagrees with the scan; FFmpeg errors pass through."""
    import av

    dm = _Demuxer(container, stream, table, check, pos)
    cc = stream.codec_context
    flush = av.Packet()
    flush.time_base = stream.time_base  # frames drained by it carry the stream's time base
    skipping, out = False, 0
    try:
        for first, last in ranges:
            dm.go_to(first, allow_seek)
            while dm.pos <= last:
                pkt = dm.next()
                if (pkt.pts not in wanted) != skipping:  # frame threads take the setting per packet sent
                    skipping = not skipping
                    cc.skip_frame = "NONREF" if skipping else "DEFAULT"
                try:
                    frames = pkt.decode()
                except av.FFmpegError as e:
                    check()
                    if strict or pkt.pts in wanted:
                        raise PlanFailed(f"the decoder refused packet {dm.pos - 1} ({e})") from e
                    log.debug("the decoder refused packet %d: %s", dm.pos - 1, e)
                    continue
                for frame in frames:
                    out += 1
                    if on_frame(frame):
                        return out
            for frame in cc.decode(flush):  # the frames the decoder still holds (B-frame reordering, threads)
                out += 1
                if on_frame(frame):
                    return out
            cc.flush_buffers()  # ready for packets again after the drain
    finally:
        if skipping:
            cc.skip_frame = "DEFAULT"
    return out


def every_packets(table: PacketTable, k: int, start: float | None = None, end: float | None = None) -> np.ndarray:
    """Index (decode order) of every ``k``-th frame in presentation order, counting only frames with
    ``start <= time < end`` when given: the frames a one-pass ``every:K`` picks. [N] int64."""
    times = table.times
    order = np.argsort(times, kind="stable")
    if start is not None:
        t = times[order]
        order = order[(t >= start - WINDOW_EDGE_S) & (t < end - WINDOW_EDGE_S)]
    return order[::k]


def read_planned(
    container,
    stream,
    table: PacketTable,
    chosen: np.ndarray,
    convert: Callable[[object], np.ndarray],
    check: Callable[[], None],
    reopen: Callable[[], tuple],
    strict: bool = False,
) -> tuple[np.ndarray, np.ndarray, str]:
    """Decodes only the packets the ``chosen`` ones need and converts each chosen frame once, as it comes
    out of the decoder, into its rows of the output: (frames [len(chosen), ...] in the order of ``chosen``,
    their times, a line saying what was decoded).
    ``reopen()`` gives a fresh (container, stream) when seeking fails. Raises PlanFailed when the file
    disagrees with its packet scan."""
    import av

    ranges = decode_ranges(table, chosen)
    pts = [int(p) for p in table.pts[chosen]]
    slots: dict[int, list[int]] = {}  # pts -> the rows of the output that show it
    for row, p in enumerate(pts):
        slots.setdefault(p, []).append(row)
    wanted = set(slots)
    out: list[np.ndarray] = []  # [the output array], allocated at the first frame: no stacking copy after
    times: dict[int, float] = {}

    def keep(frame) -> bool:
        p = frame.pts
        if p in wanted and p not in times:
            img = convert(frame)
            if not out:
                out.append(np.empty((len(pts), *img.shape), img.dtype))
            out[0][slots[p]] = img
            times[p] = float(frame.time)
        return len(times) == len(wanted)

    try:
        try:
            try:  # the scan left the demuxer at the end: back to the start (a seek, for a first range far in)
                container.seek(0)
            except av.FFmpegError as e:
                raise SeekFailed(f"cannot seek back to the start ({e})") from e
            came_out = decode_planned(container, stream, table, ranges, wanted, keep, check, strict=strict)
        except SeekFailed as e:
            log.debug("%s; demuxing through from a fresh open instead of seeking", e)
            times.clear()
            container, stream = reopen()
            came_out = decode_planned(
                container, stream, table, ranges, wanted, keep, check, allow_seek=False, pos=0, strict=strict
            )
    except av.FFmpegError as e:
        check()  # the interrupt callback stopped a read: that is the timeout
        raise PlanFailed(f"decoding by plan failed ({type(e).__name__}: {e})") from e
    if len(times) < len(wanted):
        raise PlanFailed(f"{len(wanted) - len(times)} chosen frames did not come out of the decoder")
    said = f"sent {packets_decoded(ranges)} of {len(table)} packets to the decoder, {came_out} frames came out"
    return out[0], np.asarray([times[p] for p in pts], np.float64), said


def nearest_by_seeking(container, stream, targets: np.ndarray, decode: Callable) -> list:
    """Per target, a seek to the keyframe before it and decoding forward to the frames around it; the
    last frame before the decoder stops counts. For a stream whose decoder refuses packets midway
    (Theora here), where the plan's chosen frame cannot be decoded: ``decode(container, stream)``
    yields frames and ends at a refused packet."""
    import av

    tb = float(stream.time_base)
    chosen = []
    for tgt in targets:
        prev = pick = None
        try:
            container.seek(int(max(tgt, 0) / tb), stream=stream, backward=True, any_frame=False)
            for frame in decode(container, stream):
                if frame.time >= tgt:
                    pick = prev if prev is not None and tgt - prev.time < frame.time - tgt else frame
                    break
                prev = frame
        except av.FFmpegError as e:
            log.debug("seek to %.2f s failed (%s)", tgt, e)
        chosen.append(pick if pick is not None else prev)
    return chosen
