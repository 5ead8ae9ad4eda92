"""Speech data for the paper's Google Speech Commands experiment (Table 4, left), plus the small FSDD.

The paper feeds "normalised spectrograms zero-padded to 160 x 101" (frequency x time) to LeNet / VGG-11 and
mixes at the spectrogram level. :func:`log_spectrogram` produces exactly that tensor:

* STFT with a Hamming window of ``n_fft`` samples, hop ``sample_rate // 100`` (10 ms), centred frames with zero
  padding at the edges, so 1 s of audio gives ``1 + sample_rate / hop = 101`` frames. ``n_fft`` is
  ``max(320, round(0.02 * sample_rate))``: at 16 kHz 320 samples (20 ms, 161 bins of 50 Hz), at 8 kHz also 320
  samples (40 ms, 161 bins of 25 Hz, which keeps >= 160 bins); wider rates use a 20 ms window.
* ``log1p(|STFT|)`` (log-magnitude that is 0 for silence, so zero padding stays zero), the first 160 bins kept
  (at 16 kHz this drops only the Nyquist bin), zero-padded or cropped to 101 frames.
* per-utterance normalisation: each spectrogram minus its own mean, divided by its own (population) standard
  deviation (a silent, constant spectrogram is divided by 1). Per-utterance was chosen over training-set
  statistics because it needs no state, is identical for train/val/test and for a spectrogram computed on
  the fly from a mixed waveform, and is what common PyTorch Speech Commands pipelines of the paper's time did.

Waveforms are cut or zero-padded to exactly 1 s *before* the STFT: shorter files get zeros appended at the end,
longer files keep their first second (the tail is cut; in FSDD the 20 files longer than 1 s keep >= 99.2% of
their energy that way, the speech being at the start).

Datasets are decoded once for the whole set (files read in chunks, STFT batched) and cached as a ``.pt`` file in
``cache_dir()``, keyed by a hash of the folder's resolved path, the file list (names, sizes and modification
times) and every setting, so an edited file or another folder with the same names misses the cache; a training
step never touches a WAV file.
"""

from __future__ import annotations

import os
import pickle
import re
import struct
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io.wavfile
import torch
import torch.nn.functional as F
from torch import Tensor

from vicinal.experiments.data.base import (
    STREAM_SPLIT,
    TensorSplits,
    check_fraction,
    check_option_bool,
    file_list_key,
    make_generator,
    stat_files,
)
from vicinal.experiments.data.uci import stratified_split
from vicinal.experiments.errors import DataError, DataNotFoundError
from vicinal.experiments.paths import cache_dir, data_root
from vicinal.experiments.runs import atomic_write, clean_stale_temp_files

__all__ = [
    "N_FRAMES",
    "N_FREQ",
    "SPEECH_COMMANDS_WORDS",
    "load_fsdd",
    "load_speech_commands",
    "log_spectrogram",
    "read_wav",
    "spectrogram_settings",
    "spectrograms",
]

N_FREQ = 160  # frequency bins kept (paper: 160 x 101)
N_FRAMES = 101  # time frames (1 s at a 10 ms hop, centred frames)
# Bump when the decoding or the key changes, so stale caches are not reused (2: the key has the folder and mtimes).
_CACHE_VERSION = 2

SPEECH_COMMANDS_WORDS: dict[str, tuple[str, ...]] = {
    # v0.01 (Warden, 2017): 30 words, 64,727 utterances; the paper's "30 classes".
    "v0.01": tuple(
        (
            "bed bird cat dog down eight five four go happy house left marvin nine no off on one right seven "
            "sheila six stop three tree two up wow yes zero"
        ).split()
    ),
}
SPEECH_COMMANDS_WORDS["v0.02"] = tuple(
    sorted([*SPEECH_COMMANDS_WORDS["v0.01"], "backward", "follow", "forward", "learn", "visual"])
)

_SAMPLE_LEVELS = ("spectrogram", "waveform")
_NORMALIZATION = {
    "spectrogram": "per-utterance mean/std of log1p(|STFT|)",
    "waveform": "none (waveform in [-1, 1]; log_spectrogram normalises per utterance)",
}


def read_wav(path: Path | str) -> tuple[np.ndarray, int]:
    """Read a WAV file as mono float32 in [-1, 1].

    Args:
        path: the ``.wav`` file.

    Returns:
        ``(wave, sample_rate)``: wave float32 of shape (T,). int16 is divided by 32768, int32 by 2**31, uint8 is
        centred at 128; float files are returned as stored; multi-channel files are averaged over channels.

    Raises:
        ValueError: the file is not a readable WAV file (the message names it).
    """
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", scipy.io.wavfile.WavFileWarning)
            rate, data = scipy.io.wavfile.read(path)
    except (ValueError, OSError, struct.error) as err:  # struct.error: a header cut short
        raise DataError(f"cannot read WAV file {path}: {err}") from err
    for warning in caught:
        if "prematurely" in str(warning.message):
            # a data chunk cut short: scipy returns what it read, which would be zero-padded like a short take
            raise DataError(f"cannot read WAV file {path}: {warning.message}")
        # the others are harmless (a chunk scipy does not know, such as LIST metadata, skipped; a pad byte at the
        # end): not passed on, as one line per file of a 100,000-file dataset would bury the log
    if data.shape[0] == 0:
        raise DataError(f"WAV file {path} holds no samples")
    if data.dtype == np.int16:
        wave = data.astype(np.float32) / 32768.0
    elif data.dtype == np.int32:
        wave = data.astype(np.float32) / 2147483648.0
    elif data.dtype == np.uint8:
        wave = (data.astype(np.float32) - 128.0) / 128.0
    else:
        wave = data.astype(np.float32)
    if wave.ndim == 2:  # (T, channels)
        wave = wave.mean(axis=1)
    return wave, int(rate)


def _fit_length(wave: np.ndarray, length: int) -> np.ndarray:
    """Keep the first ``length`` samples, or append zeros up to ``length``."""
    if len(wave) >= length:
        return wave[:length]
    return np.pad(wave, (0, length - len(wave)))


def spectrogram_settings(sample_rate: int) -> tuple[int, int]:
    """``(n_fft, hop)`` for a sample rate: hop 10 ms, window ``max(320, 20 ms)`` samples (>= 161 bins).

    Raises:
        ValueError: ``sample_rate`` is below 100 Hz (no 10 ms hop) or not an integer.
    """
    if not isinstance(sample_rate, int) or sample_rate < 100:
        raise ValueError(f"sample_rate must be an integer >= 100 Hz, got {sample_rate!r}")
    return max(2 * (N_FREQ - 1) + 2, round(0.02 * sample_rate)), sample_rate // 100


def log_spectrogram(wave: Tensor | np.ndarray, sample_rate: int, *, normalize: bool = True) -> Tensor:
    """Normalised log-magnitude spectrograms of shape (B, 1, 160, 101), batched, on the input's device.

    See the module docstring for the settings. Works on any device (GPU when the waves are there) and computes
    in float32 (or float64 for float64 input), so it can also be applied on the fly to mixed waveforms.

    Args:
        wave: waveforms (B, T) or a single one (T,), floating point in [-1, 1].
        sample_rate: in Hz; picks ``n_fft`` and the hop (:func:`spectrogram_settings`).
        normalize: subtract each spectrogram's mean and divide by its standard deviation.

    Returns:
        Tensor (B, 1, 160, 101); B = 1 for a 1-D input.

    Raises:
        ValueError: ``wave`` is not 1-D or 2-D, or too short for one frame.
        TypeError: ``wave`` is not floating point.
    """
    x = torch.as_tensor(wave)
    if not x.is_floating_point():
        raise TypeError(f"wave must be floating point in [-1, 1], got dtype {x.dtype}")
    if x.ndim == 1:
        x = x.unsqueeze(0)
    if x.ndim != 2:
        raise ValueError(f"wave must have shape (B, T) or (T,), got {tuple(x.shape)}")
    n_fft, hop = spectrogram_settings(sample_rate)
    if x.shape[1] < n_fft // 2 + 1:  # centred zero padding needs at least half a window of signal
        raise ValueError(f"wave has {x.shape[1]} samples, fewer than half a window ({n_fft // 2 + 1})")
    if x.dtype != torch.float64:
        x = x.float()  # stft has no half-precision CPU kernel; keep it exact under AMP too
    window = torch.hamming_window(n_fft, dtype=x.dtype, device=x.device)
    spec = torch.stft(
        x, n_fft, hop_length=hop, window=window, center=True, pad_mode="constant", return_complex=True
    )  # (B, n_fft // 2 + 1, frames)
    s = torch.log1p(spec.abs())[:, :N_FREQ]  # (B, 160, frames)
    frames = s.shape[-1]
    s = F.pad(s, (0, N_FRAMES - frames)) if frames < N_FRAMES else s[..., :N_FRAMES]  # (B, 160, 101)
    if normalize:
        mean = s.mean(dim=(1, 2), keepdim=True)  # (B, 1, 1)
        std = s.std(dim=(1, 2), keepdim=True, correction=0)
        s = (s - mean) / torch.where(std > 0, std, torch.ones_like(std))
    return s.unsqueeze(1)  # (B, 1, 160, 101)


def spectrograms(waves: Tensor, sample_rate: int, *, batch_size: int = 512) -> Tensor:
    """:func:`log_spectrogram` over a whole dataset in batches: (N, T) -> (N, 1, 160, 101) float32."""
    out = torch.empty(waves.shape[0], 1, N_FREQ, N_FRAMES, dtype=torch.float32, device=waves.device)
    for start in range(0, waves.shape[0], batch_size):
        out[start : start + batch_size] = log_spectrogram(waves[start : start + batch_size], sample_rate)
    return out


_CACHE_KEYS = ("x", "sample_rate", "padded", "cut")  # what _decode returns; a cache without them is rebuilt


def _decode(files: Sequence[Path], sample_level: str, *, seconds: float = 1.0, chunk: int = 1024) -> dict:
    """Read every file, fit it to ``seconds`` and (optionally) take the spectrogram, chunk by chunk.

    Chunking keeps the peak memory at the output plus one chunk of waveforms (Speech Commands: 4.2 GB of
    spectrograms rather than 8.3 GB with all waveforms held at once).
    """
    rate: int | None = None
    out: Tensor | None = None
    n_short = n_long = 0
    for start in range(0, len(files), chunk):
        waves = []
        for path in files[start : start + chunk]:
            wave, file_rate = read_wav(path)
            if rate is None:
                rate = file_rate
                n_fft = spectrogram_settings(rate)[0] if rate >= 100 else None
                short = n_fft is None or round(seconds * rate) < n_fft // 2 + 1  # no 10 ms hop, or half a window
                if sample_level == "spectrogram" and short:
                    raise DataError(
                        f"{path} has sample rate {file_rate} Hz: the spectrograms need at least 161 Hz (10 ms frames "
                        f"of a {seconds:g} s clip of at least half a window)"
                    )
            elif file_rate != rate:
                raise DataError(f"{path} has sample rate {file_rate} Hz, other files have {rate} Hz")
            length = round(seconds * rate)
            n_short += len(wave) < length
            n_long += len(wave) > length
            waves.append(_fit_length(wave, length))
        batch = torch.from_numpy(np.stack(waves))  # (chunk, T)
        if sample_level == "spectrogram":
            assert rate is not None  # set by the chunk's first file (a chunk is never empty)
            batch = spectrograms(batch, rate)  # (chunk, 1, 160, 101)
        if out is None:
            out = torch.empty(len(files), *batch.shape[1:], dtype=torch.float32)
        out[start : start + len(batch)] = batch
    assert out is not None and rate is not None  # files is non-empty (checked by the callers)
    return {"x": out, "sample_rate": torch.tensor(rate), "padded": torch.tensor(n_short), "cut": torch.tensor(n_long)}


def _cached(
    prefix: str, files: Sequence[Path], base: Path, sample_level: str, use_cache: bool
) -> tuple[dict, str, str]:
    """``_decode(files, sample_level)``'s tensors, from ``cache_dir()`` if present, else decoded and stored
    atomically; also the status ("hit", "miss", "off") and the cache key (see `file_list_key`; computed even when
    the cache is off: it is the data's fingerprint in a run's provenance)."""
    options = {"level": sample_level, "seconds": 1.0, "freq": N_FREQ, "frames": N_FRAMES}
    key = file_list_key(base, stat_files(files, base), version=_CACHE_VERSION, options=options)[:20]
    if not use_cache:
        return _decode(files, sample_level), "off", key
    path = cache_dir() / f"{prefix}-{key}.pt"
    if path.is_file():
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except (RuntimeError, OSError, EOFError, ValueError, pickle.UnpicklingError):
            data = None  # truncated or foreign file: rebuild it
        if isinstance(data, dict) and all(isinstance(data.get(k), torch.Tensor) for k in _CACHE_KEYS):
            return data, "hit", key
    data = _decode(files, sample_level)
    clean_stale_temp_files(path.parent, path.name)  # what a killed earlier write of this cache left behind
    atomic_write(path, lambda fh: torch.save(data, fh))  # readers never see a half-written cache
    return data, "miss", key


def _check_sample_level(sample_level: str) -> None:
    if sample_level not in _SAMPLE_LEVELS:
        raise DataError(f"sample_level must be one of {_SAMPLE_LEVELS}, got {sample_level!r}")


_FSDD_NAME = re.compile(r"^(\d)_([A-Za-z]+)_(\d+)\.wav$")


def load_fsdd(
    root: Path | str | None = None,
    *,
    seed: int = 0,
    val_fraction: float = 0.1,
    sample_level: str = "spectrogram",
    cache: bool = True,
) -> TensorSplits:
    """Free Spoken Digit Dataset: 10 digits, 8 kHz, split by its own convention (takes 0-4 are test).

    Files ``{digit}_{speaker}_{take}.wav``: takes 0-4 form the test split, takes 5-49 the training pool, of
    which a stratified (by digit), seeded ``val_fraction`` is held out as validation. Every recording is cut
    or zero-padded to 1 s (8000 samples; see the module docstring). Samples are ordered by (digit, speaker,
    take) within each split.

    Args:
        root: the ``fsdd`` folder (holding ``recordings/``) or the recordings folder itself; default
            ``data_root() / "fsdd"``.
        seed: seed of the validation carve.
        val_fraction: share of the training pool held out as validation, in [0, 1); 0 gives ``val=None``.
        sample_level: ``"spectrogram"`` -> x (N, 1, 160, 101) float32; ``"waveform"`` -> x (N, 8000) float32
            (for waveform-level mixing; apply :func:`log_spectrogram` afterwards).
        cache: reuse/store the decoded tensors in ``cache_dir()``.

    Returns:
        :class:`TensorSplits`, 10 classes, ``mean``/``std`` ``None``; ``info`` has ``sample_rate``, ``n_fft``,
        ``hop``, ``speakers``, ``counts`` (per split), ``class_counts``, ``padded``/``cut`` file counts,
        ``root`` (the recordings folder), ``cache`` ("hit", "miss" or "off"), ``cache_key`` (the hash of the
        folder, its files' names, sizes and mtimes and the settings), ``files`` (file names per split) and a
        ``split`` description.

    Raises:
        FileNotFoundError: no recordings folder or no WAV files in it (the message names the path).
        ValueError: bad ``sample_level``/``val_fraction``, a file name not of the FSDD form, or mixed rates.
    """
    _check_sample_level(sample_level)
    check_fraction("val_fraction", val_fraction, zero_ok=True)
    check_option_bool("cache", cache)
    base = Path(root) if root is not None else data_root() / "fsdd"
    rec = base / "recordings" if (base / "recordings").is_dir() else base
    if not rec.is_dir():
        raise DataNotFoundError(f"FSDD recordings folder not found: {rec} (pass root= or set VICINAL_DATA)")
    parsed = []
    for path in rec.glob("*.wav"):
        m = _FSDD_NAME.match(path.name)
        if m is None:
            raise DataError(f"{path} is not named {{digit}}_{{speaker}}_{{take}}.wav")
        parsed.append((int(m[1]), m[2], int(m[3]), path))
    if not parsed:
        raise DataNotFoundError(f"no .wav files in the FSDD recordings folder {rec}")
    parsed.sort(key=lambda t: t[:3])
    files = [p[3] for p in parsed]
    data, status, key = _cached("fsdd", files, rec, sample_level, cache)
    x = data["x"]
    y = torch.tensor([p[0] for p in parsed], dtype=torch.long)  # (N,)
    take = torch.tensor([p[2] for p in parsed])
    test_idx = torch.nonzero(take <= 4).flatten()
    pool = torch.nonzero(take > 4).flatten()
    keep, val_sub = stratified_split(y[pool], val_fraction, generator=make_generator(seed, STREAM_SPLIT, 1))
    train_idx, val_idx = pool[keep], pool[val_sub]
    rate = int(data["sample_rate"])
    n_fft, hop = spectrogram_settings(rate)
    info: dict[str, Any] = {
        "dataset": "fsdd",
        "root": str(rec),
        "sample_level": sample_level,
        "sample_rate": rate,
        "n_fft": n_fft,
        "hop": hop,
        "normalization": _NORMALIZATION[sample_level],
        "speakers": sorted({p[1] for p in parsed}),
        "counts": {"train": len(train_idx), "val": len(val_idx), "test": len(test_idx)},
        "class_counts": {
            k: torch.bincount(y[i], minlength=10).tolist()
            for k, i in (("train", train_idx), ("val", val_idx), ("test", test_idx))
        },
        "padded": int(data["padded"]),
        "cut": int(data["cut"]),
        "cache": status,
        "cache_key": key,
        "files": {
            k: [files[j].name for j in i.tolist()]
            for k, i in (("train", train_idx), ("val", val_idx), ("test", test_idx))
        },
        "split": f"takes 0-4 test, takes 5-49 train; validation {val_fraction:g} of train, stratified by digit "
        f"(seed {seed})",
    }
    return TensorSplits(
        train=(x[train_idx], y[train_idx]),
        test=(x[test_idx], y[test_idx]),
        val=(x[val_idx], y[val_idx]) if len(val_idx) else None,
        num_classes=10,
        info=info,
    )


def _list_entry(entry: str, root: Path, path: Path) -> str:
    """A split list's entry in the form the files are matched in (``relative_to(root).as_posix()``): "./bed/x.wav",
    or an absolute path inside ``root``, would pass the existence check and never match, leaving the file in train."""
    full = Path(os.path.normpath(Path(entry) if Path(entry).is_absolute() else root / entry))
    try:
        return full.relative_to(os.path.normpath(root)).as_posix()
    except ValueError:
        raise DataError(f"{path} lists {entry!r}, which is not a file under {root}") from None


def _read_list(path: Path, root: Path) -> set[str]:
    if not path.is_file():
        raise DataNotFoundError(f"Speech Commands split list not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not a UTF-8 text file (a list of file paths): {exc.reason}") from None
    entries = {_list_entry(line.strip(), root, path) for line in text.splitlines() if line.strip()}
    missing = sorted(e for e in entries if not (root / e).is_file())
    if missing:
        raise DataError(f"{path} lists {len(missing)} files that do not exist under {root}, e.g. {missing[0]}")
    return entries


def load_speech_commands(
    root: Path | str,
    *,
    version: str | None = None,
    sample_level: str = "spectrogram",
    cache: bool = True,
) -> TensorSplits:
    """Google Speech Commands in its release folder layout, split by its own list files.

    ``root`` holds one folder per word of 16 kHz, <= 1 s WAV files, ``validation_list.txt`` and
    ``testing_list.txt`` (paths ``word/file.wav``); files in neither list are training files.
    ``_background_noise_`` (and any folder starting with ``_`` or ``.``) is excluded. Classes are the word
    folders sorted alphabetically; shorter files are zero-padded to 1 s.

    Args:
        root: the extracted dataset folder.
        version: ``"v0.01"`` (30 words, the paper's) or ``"v0.02"`` (35 words) to require that word set;
            ``None`` accepts the folders as they are and reports the detected version in ``info["version"]``
            ("v0.01", "v0.02" or "custom").
        sample_level: ``"spectrogram"`` -> x (N, 1, 160, 101); ``"waveform"`` -> x (N, 16000); float32.
        cache: reuse/store the decoded tensors in ``cache_dir()`` (v0.01 spectrograms: about 4.2 GB).

    Returns:
        :class:`TensorSplits` (train, val, test), ``mean``/``std`` ``None``; ``info`` has ``version``,
        ``root``, ``classes``, ``sample_rate``, ``n_fft``, ``hop``, ``counts``, ``padded``/``cut``, ``cache``,
        ``cache_key`` (as for FSDD) and ``files`` (relative paths per split).

    Raises:
        FileNotFoundError: ``root`` or a list file is missing, or there are no WAV files.
        ValueError: unknown ``version``, word folders that do not match it, a list naming missing files, or a
            bad ``sample_level``.
    """
    _check_sample_level(sample_level)
    check_option_bool("cache", cache)
    if version is not None and version not in SPEECH_COMMANDS_WORDS:
        raise DataError(f"version must be one of {tuple(SPEECH_COMMANDS_WORDS)} or None, got {version!r}")
    root = Path(root)
    if not root.is_dir():
        raise DataNotFoundError(f"Speech Commands folder not found: {root}")
    words = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith(("_", ".")))
    if version is not None and tuple(words) != SPEECH_COMMANDS_WORDS[version]:
        expected = set(SPEECH_COMMANDS_WORDS[version])
        raise DataError(
            f"{root} does not hold the {version} word folders: missing {sorted(expected - set(words))}, "
            f"unexpected {sorted(set(words) - expected)}"
        )
    detected = next((v for v, w in SPEECH_COMMANDS_WORDS.items() if tuple(words) == w), "custom")
    val_list = _read_list(root / "validation_list.txt", root)
    test_list = _read_list(root / "testing_list.txt", root)
    both = sorted(val_list & test_list)
    if both:  # it would silently be test only
        raise DataError(
            f"{len(both)} file(s) of {root} are in both validation_list.txt and testing_list.txt, e.g. {both[0]}"
        )
    files = [f for w in words for f in sorted((root / w).glob("*.wav"))]
    rel = [f.relative_to(root).as_posix() for f in files]
    where = [2 if r in test_list else 1 if r in val_list else 0 for r in rel]  # train 0, val 1, test 2
    # Decode in split order so each split is a contiguous slice (a view, no 3.4 GB copy of the train part).
    order = sorted(range(len(files)), key=lambda i: where[i])
    files, rel, where = [files[i] for i in order], [rel[i] for i in order], [where[i] for i in order]
    if not files:
        raise DataNotFoundError(f"no .wav files in the word folders of {root}")
    data, status, key = _cached("speech_commands", files, root, sample_level, cache)
    x = data["x"]
    y = torch.tensor([words.index(r.split("/")[0]) for r in rel], dtype=torch.long)  # (N,)
    bounds = np.cumsum([0] + [where.count(i) for i in range(3)]).tolist()
    idx = {k: slice(bounds[i], bounds[i + 1]) for i, k in enumerate(("train", "val", "test"))}
    rate = int(data["sample_rate"])
    n_fft, hop = spectrogram_settings(rate)
    info: dict[str, Any] = {
        "dataset": "speech_commands",
        "root": str(root),
        "version": detected,
        "classes": words,
        "sample_level": sample_level,
        "sample_rate": rate,
        "n_fft": n_fft,
        "hop": hop,
        "normalization": _NORMALIZATION[sample_level],
        "counts": {k: i.stop - i.start for k, i in idx.items()},
        "padded": int(data["padded"]),
        "cut": int(data["cut"]),
        "cache": status,
        "cache_key": key,
        "files": {k: rel[i] for k, i in idx.items()},  # paths relative to root, per split
        "split": "validation_list.txt / testing_list.txt of the release; all other files train",
    }
    return TensorSplits(
        train=(x[idx["train"]], y[idx["train"]]),
        test=(x[idx["test"]], y[idx["test"]]),
        val=(x[idx["val"]], y[idx["val"]]) if bounds[2] > bounds[1] else None,
        num_classes=len(words),
        info=info,
    )
