"""Tests for vicinal.experiments.data.audio: WAV reading, spectrograms, FSDD and Speech Commands loaders."""

from __future__ import annotations

import os
import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.io.wavfile
import scipy.signal
import torch

from tests.experiments.lab_helpers import plant_killed_writes
from vicinal.experiments.data.audio import (
    N_FRAMES,
    N_FREQ,
    SPEECH_COMMANDS_WORDS,
    load_fsdd,
    load_speech_commands,
    log_spectrogram,
    read_wav,
    spectrogram_settings,
    spectrograms,
)
from vicinal.experiments.errors import DataError
from vicinal.experiments.paths import cache_dir, data_root

FSDD = data_root() / "fsdd" / "recordings"
needs_fsdd = pytest.mark.skipif(
    not FSDD.is_dir(), reason=f"shared FSDD recordings not found at {FSDD} (set VICINAL_DATA)"
)


def _noise(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 0.1


def _reference_frame(wave: np.ndarray, t: int, n_fft: int, hop: int) -> np.ndarray:
    """log1p |rFFT| of frame t: centred, zero-padded edges, periodic Hamming window, first 160 bins."""
    padded = np.pad(wave, n_fft // 2)
    window = 0.54 - 0.46 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)  # periodic Hamming
    return np.log1p(np.abs(np.fft.rfft(padded[t * hop : t * hop + n_fft] * window)))[:N_FREQ]


# ---------------------------------------------------------------- WAV reading


def test_read_wav_scales_int16_uint8_and_averages_channels(tmp_path: Path) -> None:
    data = np.array([-32768, -16384, 0, 16384, 32767], dtype=np.int16)
    scipy.io.wavfile.write(tmp_path / "a.wav", 8000, data)
    wave, rate = read_wav(tmp_path / "a.wav")
    assert rate == 8000 and wave.dtype == np.float32
    np.testing.assert_array_equal(wave, [-1.0, -0.5, 0.0, 0.5, 32767 / 32768])
    scipy.io.wavfile.write(tmp_path / "b.wav", 16000, np.array([0, 128, 255], dtype=np.uint8))
    np.testing.assert_array_equal(read_wav(tmp_path / "b.wav")[0], [-1.0, 0.0, 127 / 128])
    stereo = np.array([[16384, 0], [-16384, -16384]], dtype=np.int16)  # (T, channels)
    scipy.io.wavfile.write(tmp_path / "c.wav", 8000, stereo)
    np.testing.assert_array_equal(read_wav(tmp_path / "c.wav")[0], [0.25, -0.5])


def test_read_wav_bad_file(tmp_path: Path) -> None:
    (tmp_path / "x.wav").write_bytes(b"not a wav file at all")
    with pytest.raises(ValueError, match=f"cannot read WAV file {tmp_path / 'x.wav'}"):
        read_wav(tmp_path / "x.wav")
    scipy.io.wavfile.write(tmp_path / "full.wav", 8000, np.arange(3000, dtype=np.int16))
    whole = (tmp_path / "full.wav").read_bytes()
    # a data chunk cut short: scipy only warned (naming no file) and the rest was zero-padded like a short take;
    # a header cut short: struct.error, a traceback; no samples at all: an all-zero spectrogram
    for name, data, match in (
        ("cut.wav", whole[: len(whole) // 3], "Reached EOF prematurely"),
        ("header.wav", whole[:30], ""),
        ("empty.wav", None, "holds no samples"),
    ):
        if data is None:
            scipy.io.wavfile.write(tmp_path / name, 8000, np.zeros(0, dtype=np.int16))
        else:
            (tmp_path / name).write_bytes(data)
        with pytest.raises(DataError, match=rf"WAV file {re.escape(str(tmp_path / name))}.*{match}"):
            read_wav(tmp_path / name)
    # scipy's other warnings are harmless (a chunk it does not know, a pad byte): the file loads, quietly (one line
    # per file of a large dataset would bury the log)
    extra = b"cue " + (4).to_bytes(4, "little") + bytes(4)
    riff_size = int.from_bytes(whole[4:8], "little") + len(extra)
    (tmp_path / "cue.wav").write_bytes(whole[:4] + riff_size.to_bytes(4, "little") + whole[8:] + extra)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        wave, rate = read_wav(tmp_path / "cue.wav")
    assert rate == 8000 and np.array_equal(wave, read_wav(tmp_path / "full.wav")[0])


# ---------------------------------------------------------------- spectrogram


def test_settings_per_sample_rate() -> None:
    assert spectrogram_settings(16000) == (320, 160)  # 20 ms window, 10 ms hop, 161 bins
    assert spectrogram_settings(8000) == (320, 80)  # 40 ms window keeps 161 >= 160 bins
    assert spectrogram_settings(22050) == (441, 220)
    with pytest.raises(ValueError, match="sample_rate must be an integer >= 100 Hz, got 50"):
        spectrogram_settings(50)


@pytest.mark.parametrize("rate", [8000, 16000])
def test_log_spectrogram_matches_numpy_fft_frames(rate: int) -> None:
    wave = _noise(rate)  # exactly 1 s
    spec = log_spectrogram(wave, rate, normalize=False)
    assert spec.shape == (1, 1, N_FREQ, N_FRAMES) and spec.dtype == torch.float64
    n_fft, hop = spectrogram_settings(rate)
    for t in (0, 37, 100):  # left edge (zero padding), middle, right edge: 1 s gives exactly 101 frames
        ref = _reference_frame(wave.numpy(), t, n_fft, hop)
        np.testing.assert_allclose(spec[0, 0, :, t].numpy(), ref, rtol=1e-10, atol=1e-12)


def test_normalisation_is_per_utterance() -> None:
    waves = torch.stack([_noise(8000, 1), 5 * _noise(8000, 2), torch.zeros(8000, dtype=torch.float64)])
    raw = log_spectrogram(waves, 8000, normalize=False)  # (3, 1, 160, 101)
    spec = log_spectrogram(waves, 8000)
    for b in range(2):
        assert float(spec[b].mean()) == pytest.approx(0.0, abs=1e-12)
        assert float(spec[b].std(correction=0)) == pytest.approx(1.0, abs=1e-12)
        expected = (raw[b] - raw[b].mean()) / raw[b].std(correction=0)
        torch.testing.assert_close(spec[b], expected)
    assert torch.equal(spec[2], torch.zeros(1, N_FREQ, N_FRAMES, dtype=torch.float64))  # silence: no NaN


def test_short_waves_are_zero_padded_and_long_ones_cropped() -> None:
    half = log_spectrogram(_noise(4000).float(), 8000, normalize=False)[0, 0]  # 0.5 s -> 51 frames computed
    assert half.dtype == torch.float32
    assert torch.all(half[:, 51:] == 0) and torch.all(half[:, :50].sum(dim=0) > 0)
    long = _noise(16000)
    first = log_spectrogram(long[:8000], 8000, normalize=False)
    cropped = log_spectrogram(long, 8000, normalize=False)
    assert cropped.shape == (1, 1, N_FREQ, N_FRAMES)
    # Frames 0..98 only see the first 8000 samples; frames 99/100 straddle the cut.
    torch.testing.assert_close(cropped[..., :99], first[..., :99])
    assert not torch.allclose(cropped[..., 100], first[..., 100])


def test_batched_equals_one_by_one() -> None:
    waves = torch.stack([_noise(8000, s) for s in range(5)]).float()  # (5, 8000)
    batched = spectrograms(waves, 8000, batch_size=2)
    assert batched.shape == (5, 1, N_FREQ, N_FRAMES)
    for b in range(5):
        torch.testing.assert_close(batched[b : b + 1], log_spectrogram(waves[b], 8000))


def test_log_spectrogram_errors() -> None:
    with pytest.raises(TypeError, match="wave must be floating point in \\[-1, 1\\], got dtype torch.int16"):
        log_spectrogram(torch.zeros(8000, dtype=torch.int16), 8000)
    with pytest.raises(ValueError, match=r"wave must have shape \(B, T\) or \(T,\), got \(2, 1, 8000\)"):
        log_spectrogram(torch.zeros(2, 1, 8000), 8000)
    with pytest.raises(ValueError, match=r"wave has 100 samples, fewer than half a window \(161\)"):
        log_spectrogram(torch.zeros(100), 8000)


# ---------------------------------------------------------------- FSDD


@pytest.fixture(scope="module")
def fsdd_cache(tmp_path_factory: pytest.TempPathFactory):
    """A private cache folder for this module, so the spectrograms are decoded once and ~/.cache is untouched."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VICINAL_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture(scope="module")
def fsdd_spec(fsdd_cache):
    if not FSDD.is_dir():
        pytest.skip(f"shared FSDD recordings not found at {FSDD} (set VICINAL_DATA)")
    return load_fsdd()


@pytest.fixture(scope="module")
def fsdd_wave(fsdd_cache):
    if not FSDD.is_dir():
        pytest.skip(f"shared FSDD recordings not found at {FSDD} (set VICINAL_DATA)")
    return load_fsdd(sample_level="waveform")


@needs_fsdd
def test_fsdd_split_rule_and_counts(fsdd_wave) -> None:
    s = fsdd_wave
    info = s.info
    assert info["counts"] == {"train": 2430, "val": 270, "test": 300}  # 2700 train files, 10% held out
    takes = {k: [int(f.split("_")[2].removesuffix(".wav")) for f in v] for k, v in info["files"].items()}
    assert all(t <= 4 for t in takes["test"]) and all(t >= 5 for t in takes["train"] + takes["val"])
    assert len(set(info["files"]["train"]) | set(info["files"]["val"])) == 2700
    assert info["class_counts"]["test"] == [30] * 10  # 6 speakers x 5 takes
    assert info["class_counts"]["val"] == [27] * 10  # stratified by digit
    assert info["speakers"] == ["george", "jackson", "lucas", "nicolas", "theo", "yweweler"]
    assert (info["sample_rate"], info["n_fft"], info["hop"]) == (8000, 320, 80)
    assert (info["padded"], info["cut"]) == (2980, 20)
    for part in (s.train, s.val, s.test):
        assert part[0].shape == (len(part[1]), 8000) and part[0].dtype == torch.float32
    labels = [int(f[0]) for f in info["files"]["train"]]
    assert s.train[1].tolist() == labels and s.num_classes == 10


@needs_fsdd
def test_fsdd_waveforms_are_padded_or_cut_to_one_second(fsdd_wave) -> None:
    files = fsdd_wave.info["files"]["test"]
    short = files.index("0_george_0.wav")
    wave, _ = read_wav(FSDD / "0_george_0.wav")
    assert len(wave) < 8000
    np.testing.assert_array_equal(fsdd_wave.test[0][short, : len(wave)].numpy(), wave)
    assert torch.all(fsdd_wave.test[0][short, len(wave) :] == 0)
    train_files = fsdd_wave.info["files"]["train"] + fsdd_wave.info["files"]["val"]
    long_name = "9_theo_16.wav"  # 18262 samples: the first 8000 are kept
    x = torch.cat([fsdd_wave.train[0], fsdd_wave.val[0]])
    wave, _ = read_wav(FSDD / long_name)
    np.testing.assert_array_equal(x[train_files.index(long_name)].numpy(), wave[:8000])


@needs_fsdd
def test_fsdd_val_carve_is_seeded(fsdd_wave) -> None:
    again = load_fsdd(sample_level="waveform", seed=0)
    other = load_fsdd(sample_level="waveform", seed=1)
    assert again.info["cache"] == "hit"
    assert again.info["files"]["val"] == fsdd_wave.info["files"]["val"]
    assert other.info["files"]["val"] != fsdd_wave.info["files"]["val"]
    assert other.info["files"]["test"] == fsdd_wave.info["files"]["test"]
    no_val = load_fsdd(sample_level="waveform", val_fraction=0.0)
    assert no_val.val is None and len(no_val.train[1]) == 2700


@needs_fsdd
def test_fsdd_spectrograms_match_the_files_and_cache(fsdd_spec, fsdd_wave) -> None:
    s = fsdd_spec
    assert s.train[0].shape == (2430, 1, N_FREQ, N_FRAMES) and s.train[0].dtype == torch.float32
    assert s.test[0].shape == (300, 1, N_FREQ, N_FRAMES) and s.info["files"] == fsdd_wave.info["files"]
    for i in (0, 151, 299):
        torch.testing.assert_close(s.test[0][i : i + 1], log_spectrogram(fsdd_wave.test[0][i], 8000))
    assert float(s.val[0][5].mean()) == pytest.approx(0.0, abs=1e-5)
    assert float(s.val[0][5].std(correction=0)) == pytest.approx(1.0, abs=1e-5)
    hit = load_fsdd()
    assert (s.info["cache"], hit.info["cache"]) == ("miss", "hit")
    assert torch.equal(hit.train[0], s.train[0])


def test_fsdd_errors(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match=f"FSDD recordings folder not found: {missing}"):
        load_fsdd(missing)
    (tmp_path / "recordings").mkdir()
    with pytest.raises(FileNotFoundError, match="no .wav files in the FSDD recordings folder"):
        load_fsdd(tmp_path)
    scipy.io.wavfile.write(tmp_path / "recordings" / "hello.wav", 8000, np.zeros(10, dtype=np.int16))
    with pytest.raises(ValueError, match=r"hello.wav is not named \{digit\}_\{speaker\}_\{take\}.wav"):
        load_fsdd(tmp_path)
    with pytest.raises(ValueError, match="sample_level must be one of .*, got 'mfcc'"):
        load_fsdd(tmp_path, sample_level="mfcc")
    with pytest.raises(ValueError, match=r"val_fraction must be in \[0, 1\), got 1.5"):
        load_fsdd(tmp_path, val_fraction=1.5)


def _write_fsdd(folder: Path, scale: int) -> None:
    """Two takes of two digits, 0.1 s of a ramp times ``scale``: rewriting with another scale keeps each size."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("0_a_0.wav", "0_a_5.wav", "1_a_0.wav", "1_a_5.wav"):
        scipy.io.wavfile.write(folder / name, 8000, (np.arange(800, dtype=np.int16) % 100) * scale)


def test_fsdd_cache_misses_for_rewritten_files_and_other_folders(tmp_path: Path) -> None:
    """Finding 1 of the data audit: the key was (name, size) only, so both cases below returned the old audio."""
    rec = tmp_path / "a" / "recordings"
    _write_fsdd(rec, 2)
    first = load_fsdd(rec.parent, sample_level="waveform", val_fraction=0.0)
    assert first.info["cache"] == "miss" and float(first.train[0].abs().max()) == pytest.approx(198 / 32768)
    again = load_fsdd(rec.parent, sample_level="waveform", val_fraction=0.0)
    assert again.info["cache"] == "hit" and again.info["cache_key"] == first.info["cache_key"]
    sizes = sorted(f.stat().st_size for f in rec.iterdir())
    _write_fsdd(rec, 1)  # same names and sizes, half the amplitude; a later mtime (set, not left to the clock)
    for f in rec.iterdir():
        os.utime(f, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns + 1_000_000_000))
    assert sorted(f.stat().st_size for f in rec.iterdir()) == sizes
    halved = load_fsdd(rec.parent, sample_level="waveform", val_fraction=0.0)
    assert halved.info["cache"] == "miss" and float(halved.train[0].abs().max()) == pytest.approx(99 / 32768)
    other = tmp_path / "b" / "recordings"
    shutil.copytree(rec, other)  # copy2: same names, sizes and mtimes, another folder
    for f in other.iterdir():
        st = f.stat()
        f.write_bytes(f.read_bytes()[:44] + bytes(st.st_size - 44))  # silence, same size
        os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    silent = load_fsdd(other.parent, sample_level="waveform", val_fraction=0.0)
    # a cache file that unpickles to something else (another program's, a garbled one) is rebuilt, not a KeyError
    cached = next(p for p in cache_dir().glob("fsdd-*.pt") if silent.info["cache_key"] in p.name)
    for foreign in ({"x": 1}, [1, 2]):
        torch.save(foreign, cached)
        again = load_fsdd(other.parent, sample_level="waveform", val_fraction=0.0)
        assert again.info["cache"] == "miss" and torch.equal(again.train[0], silent.train[0])
    cached.write_bytes(b"garbage")  # not a zip: an UnpicklingError
    assert load_fsdd(other.parent, sample_level="waveform", val_fraction=0.0).info["cache"] == "miss"
    assert silent.info["cache"] == "miss" and float(silent.train[0].abs().max()) == 0.0
    assert silent.info["cache_key"] != halved.info["cache_key"]


def test_fsdd_option_values_are_checked(tmp_path: Path) -> None:
    _write_fsdd(tmp_path / "recordings", 1)
    for bad in ("abc", None, True):
        with pytest.raises(
            DataError, match=rf"^val_fraction must be a number in \[0, 1\), got {re.escape(repr(bad))}$"
        ):
            load_fsdd(tmp_path, val_fraction=bad)
    with pytest.raises(DataError, match=r"^cache must be true or false, got 'no'$"):
        load_fsdd(tmp_path, cache="no")


def test_mixed_sample_rates_are_rejected(tmp_path: Path) -> None:
    scipy.io.wavfile.write(tmp_path / "0_a_0.wav", 8000, np.zeros(800, dtype=np.int16))
    scipy.io.wavfile.write(tmp_path / "1_a_0.wav", 16000, np.zeros(800, dtype=np.int16))
    with pytest.raises(ValueError, match="1_a_0.wav has sample rate 16000 Hz, other files have 8000 Hz"):
        load_fsdd(tmp_path, cache=False)


# ---------------------------------------------------------------- Speech Commands (tiny tree from FSDD)

# word -> FSDD files (resampled to 16 kHz); the first of each word is validation, the second test.
TREE = {
    "zero": ["0_jackson_5.wav", "0_george_6.wav", "0_theo_7.wav", "0_lucas_8.wav"],
    "one": ["1_jackson_5.wav", "1_george_6.wav", "1_nicolas_7.wav"],
    "nine": ["9_jackson_5.wav", "9_george_6.wav", "9_theo_16.wav"],  # 9_theo_16 is 2.3 s: cut to 1 s
}


def _resampled(name: str) -> np.ndarray:
    wave, _ = read_wav(FSDD / name)
    return np.clip(scipy.signal.resample_poly(wave, 2, 1), -1, 32767 / 32768)  # 8 kHz -> 16 kHz


@pytest.fixture
def tiny_tree(tmp_path: Path) -> Path:
    if not FSDD.is_dir():
        pytest.skip(f"shared FSDD recordings not found at {FSDD} (set VICINAL_DATA)")
    root = tmp_path / "speech_commands"
    for word, names in TREE.items():
        (root / word).mkdir(parents=True)
        for name in names:
            pcm = np.round(_resampled(name) * 32768).astype(np.int16)
            scipy.io.wavfile.write(root / word / name, 16000, pcm)
    (root / "_background_noise_").mkdir()
    scipy.io.wavfile.write(root / "_background_noise_" / "noise.wav", 16000, np.ones(48000, dtype=np.int16))
    (root / "validation_list.txt").write_text("".join(f"{w}/{n[0]}\n" for w, n in TREE.items()))
    (root / "testing_list.txt").write_text("".join(f"{w}/{n[1]}\n" for w, n in TREE.items()))
    return root


def test_speech_commands_tiny_tree(tiny_tree: Path) -> None:
    s = load_speech_commands(tiny_tree, sample_level="waveform", cache=False)
    info = s.info
    assert info["classes"] == ["nine", "one", "zero"] and s.num_classes == 3  # alphabetical
    assert info["version"] == "custom" and info["cache"] == "off"
    assert info["counts"] == {"train": 4, "val": 3, "test": 3}  # _background_noise_ excluded
    assert info["files"]["val"] == ["nine/9_jackson_5.wav", "one/1_jackson_5.wav", "zero/0_jackson_5.wav"]
    assert info["files"]["test"] == ["nine/9_george_6.wav", "one/1_george_6.wav", "zero/0_george_6.wav"]
    assert s.val[1].tolist() == [0, 1, 2] and s.train[1].tolist() == [0, 1, 2, 2]
    assert (info["sample_rate"], info["n_fft"], info["hop"]) == (16000, 320, 160)
    assert (info["padded"], info["cut"]) == (9, 1)
    assert s.train[0].shape == (4, 16000) and s.train[0].dtype == torch.float32
    pcm = np.round(_resampled("1_nicolas_7.wav") * 32768).astype(np.int16) / 32768.0
    i = info["files"]["train"].index("one/1_nicolas_7.wav")
    np.testing.assert_allclose(s.train[0][i, : len(pcm)].numpy(), pcm, atol=1e-7)
    assert torch.all(s.train[0][i, len(pcm) :] == 0)
    j = info["files"]["train"].index("nine/9_theo_16.wav")
    long = np.round(_resampled("9_theo_16.wav") * 32768).astype(np.int16)[:16000] / 32768.0
    np.testing.assert_allclose(s.train[0][j].numpy(), long, atol=1e-7)

    spec = load_speech_commands(tiny_tree, cache=False)
    assert spec.test[0].shape == (3, 1, N_FREQ, N_FRAMES)
    torch.testing.assert_close(spec.train[0], spectrograms(s.train[0], 16000))


def test_speech_commands_lists_are_matched_as_checked(tiny_tree: Path) -> None:
    # "./nine/x.wav" passed the existence check but never matched, so the file stayed in train; a file in both
    # lists silently became test
    plain = load_speech_commands(tiny_tree, sample_level="waveform", cache=False).info["files"]
    for listing in ("validation_list.txt", "testing_list.txt"):
        path = tiny_tree / listing
        path.write_text("".join(f"./{line}\n" for line in path.read_text().splitlines()))
    dotted = load_speech_commands(tiny_tree, sample_level="waveform", cache=False).info["files"]
    assert dotted == plain and len(dotted["val"]) == 3
    path = tiny_tree / "validation_list.txt"
    path.write_text("".join(f"{tiny_tree}/{line[2:]}\n" for line in path.read_text().splitlines()))  # absolute
    assert load_speech_commands(tiny_tree, sample_level="waveform", cache=False).info["files"] == plain
    path.write_text(f"../{tiny_tree.name}/nine/9_jackson_5.wav\n")  # through the parent folder: the same file
    assert load_speech_commands(tiny_tree, sample_level="waveform", cache=False).info["files"]["val"] == [
        "nine/9_jackson_5.wav"
    ]
    shutil.copy(tiny_tree / "nine" / "9_jackson_5.wav", tiny_tree.parent / "elsewhere.wav")
    path.write_text("../elsewhere.wav\n")  # a file, but not one of the dataset's
    with pytest.raises(DataError, match=r"validation_list.txt lists '../elsewhere.wav', which is not a file under "):
        load_speech_commands(tiny_tree, sample_level="waveform", cache=False)
    path.write_text("nine/9_jackson_5.wav\n")
    (tiny_tree / "testing_list.txt").write_text("nine/9_jackson_5.wav\n")  # also in validation_list.txt
    with pytest.raises(DataError, match=r"1 file\(s\) of .* are in both validation_list.txt and testing_list.txt, "):
        load_speech_commands(tiny_tree, sample_level="waveform", cache=False)


def test_speech_commands_detects_v001(tiny_tree: Path) -> None:
    for word in SPEECH_COMMANDS_WORDS["v0.01"]:
        (tiny_tree / word).mkdir(exist_ok=True)
    s = load_speech_commands(tiny_tree, sample_level="waveform", cache=False)
    assert s.info["version"] == "v0.01" and s.num_classes == 30
    assert s.info["classes"].index("zero") == 29 and s.train[1].tolist() == [13, 17, 29, 29]
    assert load_speech_commands(tiny_tree, version="v0.01", sample_level="waveform", cache=False).num_classes == 30
    assert len(SPEECH_COMMANDS_WORDS["v0.02"]) == 35


def test_speech_commands_errors(tiny_tree: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"does not hold the v0.02 word folders: missing \['backward', 'bed'"):
        load_speech_commands(tiny_tree, version="v0.02", cache=False)
    with pytest.raises(ValueError, match=r"version must be one of \('v0.01', 'v0.02'\) or None, got 'v3'"):
        load_speech_commands(tiny_tree, version="v3")
    with pytest.raises(FileNotFoundError, match=f"Speech Commands folder not found: {tmp_path / 'none'}"):
        load_speech_commands(tmp_path / "none")
    (tiny_tree / "validation_list.txt").write_text("one/missing.wav\n")
    with pytest.raises(ValueError, match="lists 1 files that do not exist under .*, e.g. one/missing.wav"):
        load_speech_commands(tiny_tree, cache=False)
    (tiny_tree / "validation_list.txt").write_text("one/1_jackson_5.wav\n")
    (tiny_tree / "testing_list.txt").unlink()
    with pytest.raises(FileNotFoundError, match="Speech Commands split list not found: .*testing_list.txt"):
        load_speech_commands(tiny_tree, cache=False)


def test_speech_commands_cache_is_keyed_by_folder(tiny_tree: Path, tmp_path: Path) -> None:
    first = load_speech_commands(tiny_tree, sample_level="waveform")
    assert first.info["cache"] == "miss"
    assert load_speech_commands(tiny_tree, sample_level="waveform").info["cache"] == "hit"
    moved = shutil.copytree(tiny_tree, tmp_path / "elsewhere")  # same names, sizes and mtimes
    again = load_speech_commands(moved, sample_level="waveform")
    assert again.info["cache"] == "miss" and again.info["cache_key"] != first.info["cache_key"]


def test_a_rebuilt_cache_sweeps_the_temp_file_of_a_killed_write(tmp_path: Path) -> None:
    rec = tmp_path / "a" / "recordings"
    _write_fsdd(rec, 2)
    first = load_fsdd(rec.parent, sample_level="waveform", val_fraction=0.0)
    (cache,) = Path(os.environ["VICINAL_CACHE"]).glob(f"*{first.info['cache_key']}.pt")
    cache.unlink()  # as if the decode that was to write it had been killed
    (planted,) = plant_killed_writes(cache.parent, [cache.name])
    again = load_fsdd(rec.parent, sample_level="waveform", val_fraction=0.0)
    assert again.info["cache"] == "miss" and cache.is_file() and not planted.exists()


def test_broken_links_odd_list_files_and_low_rates_are_one_line_data_errors(tmp_path: Path) -> None:
    # each was a traceback: a listed file whose link is broken (git-annex content not fetched), a split list that
    # is not UTF-8, and WAV files too slow for 10 ms frames of half a window
    from vicinal.experiments.data import audio
    from vicinal.experiments.data.base import stat_files

    (tmp_path / "gone.wav").symlink_to(tmp_path / "annex" / "missing")
    with pytest.raises(DataError, match=r"gone.wav is a broken link: its content is missing \(fetch it"):
        stat_files([tmp_path / "gone.wav"], tmp_path)
    listing = tmp_path / "validation_list.txt"
    listing.write_bytes(b"yes/\xff\xfe.wav\n")
    with pytest.raises(DataError, match=r"validation_list.txt is not a UTF-8 text file \(a list of file paths\)"):
        audio._read_list(listing, tmp_path)
    slow = tmp_path / "0_a_0.wav"
    scipy.io.wavfile.write(slow, 100, np.zeros(100, dtype=np.int16))
    with pytest.raises(DataError, match=r"0_a_0.wav has sample rate 100 Hz: the spectrograms need at least 161 Hz"):
        audio._decode([slow], "spectrogram")
