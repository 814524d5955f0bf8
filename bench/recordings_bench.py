"""Benchmark of the sealed envelope: seal throughput vs OpenSSL, range latency, sealer memory.

Prints one JSON object, then a table.

    python bench/recordings_bench.py [--mb 256] [--big-gb 2] [--skip-big] [--skip-store] [--short]

Targets (issue 14):
- seal throughput on one core >= 0.5 x the slower of ``openssl speed -evp aes-256-gcm`` and
  ``openssl speed sha256`` (64 KiB blocks), both run in this same bench on the same machine;
- decrypt and verify one second of 8 kHz 16-bit mono audio (16,000 bytes) at minute 59 of a
  one-hour recording in < 5 ms (``decrypt_range``: header, unwrap, the covered chunks);
- the sealing process's RSS stays flat (< 50 MB) while sealing a 2 GB file (written to /tmp
  chunk by chunk, deleted afterwards; sealed output also deleted).
Sealing is measured as the sealer calls it: with ``plain_sha256`` (the closure digest) and the
file's identity when that digest was taken (``unchanged``), so one read of the plaintext, AES-GCM
and one SHA-256 pass (the chunk digests; the sealed digest is their root, format v2).
``sealer_path_mbs`` adds the closure digest itself (one SHA-256 pass over the plaintext, taken
by the sealer before ``recording.closed``): what one file costs the sealer end to end.
The sealed output of the throughput runs goes to ``--out-dir`` (default ``/dev/shm``, RAM): on a
disk the figure is the disk's write-back speed once dirty pages are throttled, not the seal's;
``seal_to_disk_mbs`` is the same seal with its output in the bench's /tmp directory.

Store (issue 16): ``--store-files`` recordings of ``--store-seconds`` of 8 kHz audio each are
sealed as the sealer does (temporary name, fsync, rename into the sealed directory) and then put
into the store: the local directory (``LocalStore``: the file is already there) and an S3
bucket on a moto server on localhost (``S3Store.put``: SHA-256 and MD5 pass, one PUT with
``If-None-Match``, HEAD to verify, local copy removed), same run, same files. Reported as
plaintext MB/s each and ``store_s3_vs_local_ratio``; plus one second at minute 59 of a one-hour
recording read from S3 with ranged GETs. moto runs in this process (Python, on the same core,
in memory): the ratio says what the upload path costs here, not what a real S3 over a network
gives. ``--short`` is a quick run (16 MB throughput, no 2 GB file, fewer store files).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from asterisk_recorder.recordings import KeyStore, decrypt_range, seal, verify
from asterisk_recorder.recordings.envelope import FileIdentity
from asterisk_recorder.recordings.keys import KekOpener, KekPublicKey
from asterisk_recorder.recordings.storage import LocalStore, S3Store, SealedStore

_UNITS = {"k": 1e3}


def openssl_speed(algorithm: list[str]) -> float:
    """MB/s (10^6 bytes) at 65536-byte blocks from ``openssl speed``."""
    out = subprocess.run(
        ["openssl", "speed", "-seconds", "2", "-bytes", "65536", *algorithm],
        capture_output=True, text=True, check=True, timeout=120,
    ).stdout
    for line in out.splitlines():
        match = re.match(r"^\s*(\S+)\s+([\d.]+)k\s*$", line)
        if match and not line.startswith("type"):
            return float(match.group(2)) * 1000 / 1e6
    raise RuntimeError(f"cannot parse openssl speed output:\n{out}")


def rss_mb() -> float:
    """Current resident set size in MB (from /proc)."""
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def write_random(path: Path, size: int) -> str:
    """Write ``size`` pseudo-random bytes (streamed) and return their SHA-256."""
    digest = hashlib.sha256()
    block = os.urandom(1 << 20)
    with open(path, "wb") as out:
        left = size
        i = 0
        while left > 0:
            piece = block[: min(left, len(block))]
            piece = i.to_bytes(8, "big") + piece[8:] if len(piece) >= 8 else piece
            out.write(piece)
            digest.update(piece)
            left -= len(piece)
            i += 1
    return digest.hexdigest()


def _seal_into(plain: Path, sealed_dir: Path, relative: str, kek: KekPublicKey) -> Path:
    """Seal ``plain`` into ``sealed_dir/relative`` as the sealer does (temp, fsync, rename)."""
    target = sealed_dir / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.tmp")
    with open(plain, "rb") as src, open(temp, "wb") as dst:
        seal(src, dst, recording_id=target.name.split(".")[0], kek=kek)
        dst.flush()
        os.fsync(dst.fileno())
    os.rename(temp, target)
    return target


def store_bench(work: Path, kek: KekPublicKey, opener: KekOpener, files: int,
                seconds: float) -> dict[str, object]:
    """Seal + store throughput, local directory vs S3 (moto on localhost), same files."""
    import logging
    import socket

    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's access log

    os.environ.update({"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                       "AWS_EC2_METADATA_DISABLED": "true"})
    plains = []
    for i in range(files):
        plain = work / f"store-{i}.wav"
        write_random(plain, int(seconds * 16000))
        plains.append(plain)
    total_mb = sum(p.stat().st_size for p in plains) / 1e6
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(
            Bucket="bench-rec", ObjectLockEnabledForBucket=True)
        timings: dict[str, float] = {}
        for name in ("local", "s3", "local_again"):
            sealed_dir = work / f"sealed-{name}"
            store: SealedStore = (LocalStore(sealed_dir) if name.startswith("local") else
                                  S3Store("bench-rec", prefix=f"run-{name}",
                                          endpoint_url=endpoint, region="us-east-1"))
            t0 = time.perf_counter()
            for i, plain in enumerate(plains):
                relative = f"2026/12/04/{i:05d}-{name}.wav.arrec"
                local = _seal_into(plain, sealed_dir, relative, kek)
                store.put(local, relative)
                if store.remote:
                    local.unlink()
            timings[name] = time.perf_counter() - t0
        local_mbs = total_mb / min(timings["local"], timings["local_again"])
        s3_mbs = total_mb / timings["s3"]

        hour = work / "hour.wav"
        write_random(hour, 3600 * 16000)
        s3 = S3Store("bench-rec", prefix="hour", endpoint_url=endpoint, region="us-east-1")
        hour_sealed = _seal_into(hour, work / "sealed-hour", "hour.wav.arrec", kek)
        location = s3.put(hour_sealed, "hour.wav.arrec").location
        start = 59 * 60 * 16000
        times = []
        fetched = 0
        for i in range(20):
            with s3.open(location) as src:
                t0 = time.perf_counter()
                decrypt_range(src, opener, start + i * 7, start + i * 7 + 16000)
                times.append(time.perf_counter() - t0)
                fetched = getattr(src, "fetched_bytes", 0)
        times.sort()
    finally:
        server.stop()
    return {
        "store_files": files, "store_file_seconds": seconds, "store_total_mb": round(total_mb, 1),
        "store_local_mbs": round(local_mbs, 1), "store_s3_mbs": round(s3_mbs, 1),
        "store_s3_vs_local_ratio": round(s3_mbs / local_mbs, 3),
        "s3_range_1s_at_59min_ms_median": round(times[len(times) // 2] * 1000, 2),
        "s3_range_1s_bytes_fetched": fetched,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=256, help="plaintext size for throughput")
    parser.add_argument("--big-gb", type=float, default=2.0, help="file size for the RSS test")
    parser.add_argument("--skip-big", action="store_true")
    parser.add_argument("--skip-store", action="store_true", help="no local vs S3 store run")
    parser.add_argument("--store-files", type=int, default=40)
    parser.add_argument("--store-seconds", type=float, default=300.0,
                        help="length of each store-run recording (8 kHz 16-bit mono)")
    parser.add_argument("--short", action="store_true",
                        help="quick run: --mb 16 --skip-big --store-files 8 --store-seconds 60")
    parser.add_argument(
        "--out-dir", type=Path, default=Path("/dev/shm"),  # noqa: S108 - a mkdtemp inside
        help="where the throughput runs write the sealed file (default: RAM)",
    )
    args = parser.parse_args()
    if args.short:
        args.mb, args.skip_big, args.store_files, args.store_seconds = 16, True, 8, 60.0
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core

    work = Path(tempfile.mkdtemp(prefix="recbench-", dir="/tmp"))
    keys = KeyStore(work / "public", work / "private")
    keys.create("standard", "2026-12")
    kek = keys.current("standard", "2026-12")
    opener = keys.opener()
    result: dict[str, object] = {}
    try:
        aes = openssl_speed(["-evp", "aes-256-gcm"])
        sha = openssl_speed(["sha256"])
        plain = work / "plain.wav"
        usable = args.out_dir.is_dir() and os.access(args.out_dir, os.W_OK)
        out_dir = args.out_dir if usable else work
        fast = Path(tempfile.mkdtemp(prefix="recbench-out-", dir=out_dir))
        sealed = fast / "plain.arrec"
        digest = write_random(plain, args.mb * 1_000_000)
        identity = FileIdentity.of(os.stat(plain))
        runs = []
        closure_runs = []
        for _ in range(3):
            with open(plain, "rb") as src, open(sealed, "wb") as dst:
                t0 = time.perf_counter()
                info = seal(src, dst, recording_id="bench", kek=kek, plain_sha256=digest,
                            unchanged=identity)
                runs.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            closure = hashlib.sha256()
            with open(plain, "rb") as src:
                while block := src.read(1 << 20):
                    closure.update(block)
            closure_runs.append(time.perf_counter() - t0)
            assert closure.hexdigest() == digest
        seal_mbs = args.mb / min(runs)
        sealer_path_mbs = args.mb / (min(runs) + min(closure_runs))
        on_disk = work / "plain.arrec"
        with open(plain, "rb") as src, open(on_disk, "wb") as dst:
            t0 = time.perf_counter()
            seal(src, dst, recording_id="bench", kek=kek, plain_sha256=digest, unchanged=identity)
            disk_s = time.perf_counter() - t0
        on_disk.unlink()
        with open(sealed, "rb") as src:
            t0 = time.perf_counter()
            verify(src, expected=info, opener=opener)
            verify_mbs = args.mb / (time.perf_counter() - t0)
        sealed.unlink()
        fast.rmdir()
        sealed = work / "plain.arrec"
        plain.unlink()
        slower = min(aes, sha)
        result.update(
            openssl_aes_256_gcm_mbs=round(aes, 1), openssl_sha256_mbs=round(sha, 1),
            seal_mbs=round(seal_mbs, 1), seal_ratio_vs_slower=round(seal_mbs / slower, 3),
            sealer_path_mbs=round(sealer_path_mbs, 1),
            seal_to_disk_mbs=round(args.mb / disk_s, 1), seal_output_dir=str(out_dir),
            verify_with_tags_mbs=round(verify_mbs, 1),
        )

        hour = 3600 * 16000  # 8 kHz, 16-bit mono
        write_random(plain, hour)
        with open(plain, "rb") as src, open(sealed, "wb") as dst:
            seal(src, dst, recording_id="hour", kek=kek)
        start = 59 * 60 * 16000
        times = []
        fresh_times = []
        with open(sealed, "rb") as src:
            for i in range(200):
                t0 = time.perf_counter()
                decrypt_range(src, opener, start + i * 7, start + i * 7 + 16000)
                times.append(time.perf_counter() - t0)
        for i in range(20):  # each with a new opener: the private key file is read and parsed
            fresh = keys.opener()
            with open(sealed, "rb") as src:
                t0 = time.perf_counter()
                decrypt_range(src, fresh, start + i, start + i + 16000)
                fresh_times.append(time.perf_counter() - t0)
        times.sort()
        fresh_times.sort()
        result.update(
            range_1s_at_59min_ms_median=round(times[len(times) // 2] * 1000, 3),
            range_1s_at_59min_ms_p99=round(times[int(len(times) * 0.99)] * 1000, 3),
            range_1s_fresh_key_ms_median=round(fresh_times[len(fresh_times) // 2] * 1000, 3),
        )
        sealed.unlink()
        plain.unlink()

        if not args.skip_big:
            size = int(args.big_gb * 1e9)
            big_digest = write_random(plain, size)
            before = rss_mb()
            peak = before
            with open(plain, "rb") as src, open(sealed, "wb") as dst:
                t0 = time.perf_counter()
                seal(src, dst, recording_id="big", kek=kek, plain_sha256=big_digest)
                big_s = time.perf_counter() - t0
            peak = max(peak, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
            after = rss_mb()
            sealed.unlink()
            plain.unlink()
            result.update(
                big_file_gb=args.big_gb, big_seal_s=round(big_s, 1),
                rss_before_mb=round(before, 1), rss_after_mb=round(after, 1),
                rss_peak_mb=round(peak, 1),
            )
        if not args.skip_store:
            result.update(store_bench(work, kek, opener, args.store_files, args.store_seconds))
    finally:
        for path in sorted(work.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        work.rmdir()

    targets = {
        "seal_ratio_vs_slower >= 0.5": float(str(result["seal_ratio_vs_slower"])) >= 0.5,
        "range_1s_at_59min_ms_p99 < 5": float(str(result["range_1s_at_59min_ms_p99"])) < 5,
    }
    if "rss_peak_mb" in result:
        targets["rss_peak_mb < 50"] = float(str(result["rss_peak_mb"])) < 50
    result["targets_met"] = targets
    print(json.dumps(result))
    print()
    print(f"{'measure':<36} value")
    for key, value in result.items():
        if key != "targets_met":
            print(f"{key:<36} {value}")
    for name, ok in targets.items():
        print(f"{'target ' + name:<36} {'met' if ok else 'MISSED'}")
    return 0 if all(targets.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
