"""Prediction speed and memory on this machine, beside a peer network doing the same job.

    python benchmarks/predict_speed.py [--quick] [--sections network,volumes,growth,levers] [--out results.json]

Models: the bundled demo model (random weights of its shape while it is not bundled) and the
paper's full-size network (384 x 384, width 32, one channel; random weights: speed does not
depend on them). Each has a peer: MONAI's BasicUNet (2D, BatchNorm), its width chosen so that
its GFLOPs per slice are closest to the model's, run through the very same ``predict_slices`` /
``predict_volume`` path with the same batching.

Figures, each from a fresh subprocess (so that its peak memory is its own):
- network: slices per second through ``predict_slices`` (warm: the first batch is run before);
- volume: seconds end to end as ``mtsa predict`` does it (read, preprocess, network, map back,
  write ``.seg.nrrd`` + ``.json``), the model already loaded, on the real scans;
- peak resident memory above the model: the peak (VmHWM, reset after loading) minus the resident
  memory once the model is loaded and everything imported;
- share of the machine's limit: network FLOPs (GFLOPs per slice x slices) per second over the
  fp32 matrix-multiply throughput torch reaches on this machine, same threads, same run.
``--sections levers`` measures the speed-ups that were tried, on the network alone (see predictor.py).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
REAL = Path(os.environ.get("MTSA_REAL_DATA", ROOT.parent / "shared" / "data" / "real"))
SCANS = {
    "BraTS-MET 240x240x155 (NIfTI)": REAL / "brats-met-00110" / "BraTS-MET-00110-000-t1c.nii.gz",
    "VS-SEG 512x512x120 (DICOM)": REAL / "vs-seg-001-dicom",
}
CROPS = (40, 80, 120)  # slices of the VS-SEG series for the growth check
LEVERS = ("plain", "fused BN only", "channels-last only", "default", "threads=1", "bfloat16 autocast", "onnxruntime",
          "torch.compile")
GOALS = {"demo_brats_s": 10.0, "full_matmul_share": 0.5, "series_peak_gb": 2.0}


# ----------------------------------------------------------------------------- models


def model_configs() -> dict[str, tuple[Any, Any]]:
    from MTSASegmenterLib.config import NetConfig, PreprocessConfig

    return {
        "demo": (NetConfig(in_channels=3, base_width=12, input_size=160),
                 PreprocessConfig(spacing_mm=1.5, input_size=160, min_slice_mm=2.0)),
        "full": (NetConfig(in_channels=1, base_width=32, input_size=384),  # 384 x 0.625 mm = 240 mm
                 PreprocessConfig(spacing_mm=0.625, input_size=384, context_slices=0)),
    }


def make_checkpoints(folder: Path) -> dict[str, dict[str, Any]]:
    """name -> {path, weights}; the bundled demo model when present, else random weights of its shape."""
    from MTSASegmenterLib.model.checkpoint import save_checkpoint
    from MTSASegmenterLib.model.network import MTSANet
    from MTSASegmenterLib.resources import demo_model_path

    found = {}
    for name, (net_cfg, prep_cfg) in model_configs().items():
        if name == "demo" and demo_model_path().is_file():
            found[name] = {"path": str(demo_model_path()), "weights": "bundled demo model"}
            continue
        torch.manual_seed(0)
        path = save_checkpoint(folder / f"{name}.pt", MTSANet(net_cfg), net_cfg, prep_cfg)
        found[name] = {"path": str(path), "weights": "random"}
    return found


def basic_unet(width: int, in_channels: int) -> torch.nn.Module:
    from monai.networks.nets import BasicUNet

    f = width
    return BasicUNet(spatial_dims=2, in_channels=in_channels, out_channels=1,
                     features=(f, f, 2 * f, 4 * f, 8 * f, f), norm="batch")


def gflops(net: torch.nn.Module, in_channels: int, size: int) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(torch.empty(1, in_channels, size, size, device="meta"))
    return counter.get_total_flops() / 1e9


def peer_width(target_gflops: float, in_channels: int, size: int) -> tuple[int, float]:
    """BasicUNet width whose GFLOPs per slice are closest to the model's."""
    best = (0, float("inf"))
    for width in range(4, 97, 2):
        with torch.device("meta"):
            g = gflops(basic_unet(width, in_channels).eval(), in_channels, size)
        if abs(g - target_gflops) < abs(best[1] - target_gflops):
            best = (width, g)
    return best


class PeerNet(torch.nn.Module):
    """BasicUNet answering like MTSA-Net, ``(seg_logits, None)``, so the same predictor runs it."""

    def __init__(self, width: int, in_channels: int) -> None:
        super().__init__()
        self.unet = basic_unet(width, in_channels)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        return self.unet(x), None


# ----------------------------------------------------------------------------- worker side


def _status_kb(field: str) -> int:
    return int(re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M).group(1))


def _reset_peak() -> None:
    """Linux: writing 5 to clear_refs resets VmHWM to the current resident size."""
    Path("/proc/self/clear_refs").write_text("5")


def _load(job: dict[str, Any]):
    from MTSASegmenterLib.model.checkpoint import load_checkpoint

    model = load_checkpoint(job["checkpoint"])
    if job.get("peer_width"):
        torch.manual_seed(0)
        model = dataclasses.replace(model, net=PeerNet(job["peer_width"], model.net_config.in_channels).eval())
    if job.get("flip"):  # test-time left-right flip averaging, whatever the checkpoint asks for
        model = dataclasses.replace(model, preprocess=dataclasses.replace(model.preprocess, flip_average=True))
    return model


class ChannelsLast(torch.nn.Module):
    """Lever: the network with channels-last weights (activations follow them in oneDNN convolutions)."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = copy.deepcopy(net).to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor):
        return self.net(x)


class Bfloat16(torch.nn.Module):
    """Lever: the prepared network under CPU autocast to bfloat16 (changes the arithmetic, so not a default)."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return tuple(None if o is None else o.float() for o in self.net(x))


class OrtNet(torch.nn.Module):
    """Lever: the prepared network exported to ONNX and run by ONNX Runtime with torch's thread count."""

    def __init__(self, net: torch.nn.Module, in_channels: int, size: int, folder: Path) -> None:
        super().__init__()
        import onnxruntime as ort

        path = folder / "net.onnx"
        names = ["seg", "cls"]
        torch.onnx.export(net, (torch.rand(2, in_channels, size, size),), str(path), dynamo=True, input_names=["x"],
                          output_names=names, dynamic_shapes={"x": {0: torch.export.Dim("batch")}}, verbose=False)
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.outputs = [o.name for o in self.session.get_outputs()]

    def forward(self, x: torch.Tensor):
        found = dict(zip(self.outputs, self.session.run(None, {"x": x.numpy()})))
        return tuple(torch.from_numpy(found[n]) if n in found else None for n in ("seg", "cls"))


def job_matmul(job: dict[str, Any]) -> dict[str, Any]:
    n = job["n"]
    a, b = torch.rand(n, n), torch.rand(n, n)
    a @ b
    best, spent = float("inf"), 0.0
    while spent < job["seconds"]:
        t = time.perf_counter()
        a @ b
        dt = time.perf_counter() - t
        best, spent = min(best, dt), spent + dt
    return {"n": n, "gflops_per_s": 2 * n**3 / best / 1e9}


def job_network(job: dict[str, Any]) -> dict[str, Any]:
    """Slices per second through predict_slices, with one of the levers."""
    from MTSASegmenterLib.inference.predictor import inference_net, predict_slices
    from MTSASegmenterLib.model.network import fuse_batchnorm

    model = _load(job)
    cpu = torch.device("cpu")
    net, prepare, lever = model.net, True, job.get("lever", "default")
    if lever.startswith("threads="):
        torch.set_num_threads(int(lever.split("=")[1]))
    elif lever == "plain":
        prepare = False
    elif lever == "fused BN only":
        net, prepare = fuse_batchnorm(net), False
    elif lever == "channels-last only":
        net, prepare = ChannelsLast(net.eval()), False
    elif lever == "bfloat16 autocast":
        net, prepare = Bfloat16(inference_net(net, cpu)), False
    elif lever == "torch.compile":
        net, prepare = torch.compile(inference_net(net, cpu)), False
    elif lever == "onnxruntime":
        with tempfile.TemporaryDirectory() as tmp:
            net = OrtNet(inference_net(net, cpu), model.net_config.in_channels, model.preprocess.input_size, Path(tmp))
        prepare = False
    rss_model = _status_kb("VmRSS")
    _reset_peak()
    batch, n, context = job["batch"], job["slices"], model.preprocess.context_slices
    size = model.preprocess.input_size
    volume = np.random.default_rng(0).random((max(n, batch), size, size), dtype=np.float32) * 2
    t = time.perf_counter()
    first = predict_slices(net, volume, np.arange(batch), context, cpu, batch, prepare=prepare)  # warm-up, compile
    first_s = time.perf_counter() - t
    reference = predict_slices(model.net, volume, np.arange(batch), context, cpu, batch, prepare=False)
    difference = float(np.abs(first.gtv_probability - reference.gtv_probability).max())
    t = time.perf_counter()
    predict_slices(net, volume, np.arange(n), context, cpu, batch, prepare=prepare)
    seconds = time.perf_counter() - t
    return {"slices": n, "seconds": seconds, "slices_per_s": n / seconds, "first_batch_s": first_s,
            "max_probability_difference": difference,
            "threads": torch.get_num_threads(), "rss_model_mb": rss_model / 1024,
            "peak_above_model_mb": (_status_kb("VmHWM") - rss_model) / 1024}


def job_volume(job: dict[str, Any]) -> dict[str, Any]:
    """One scan end to end with the functions ``mtsa predict`` uses, the model already loaded."""
    from MTSASegmenterLib.cli import output_paths
    from MTSASegmenterLib.inference.pipeline import case_name, predict_volume
    from MTSASegmenterLib.io.imageio import read_image
    from MTSASegmenterLib.io.outputs import write_prediction_files

    model = _load(job)
    rss_model = _status_kb("VmRSS")
    _reset_peak()
    with tempfile.TemporaryDirectory() as out:
        t = time.perf_counter()
        image = read_image(job["scan"])
        case = case_name(job["scan"])
        result = predict_volume(image, model, device="cpu", batch_size=job.get("batch"), case=case, source=job["scan"])
        write_prediction_files(output_paths(case, Path(out), ("seg",)), result.mask, result.report.to_dict(), segment=result.segment)
        seconds = time.perf_counter() - t
    return {"seconds": seconds, "inference_s": round(result.report.timing.inference_s, 3),
            "slices": result.report.slices.count, "predicted": result.report.slices.predicted,
            "input_size": list(image.GetSize()), "threads": torch.get_num_threads(),
            "rss_model_mb": rss_model / 1024, "peak_above_model_mb": (_status_kb("VmHWM") - rss_model) / 1024}


def worker(job: dict[str, Any]) -> None:
    result = {"matmul": job_matmul, "network": job_network, "volume": job_volume}[job["kind"]](job)
    print(json.dumps(result))


# ----------------------------------------------------------------------------- parent side


def run(job: dict[str, Any]) -> dict[str, Any]:
    """One measurement in a fresh interpreter; its last stdout line is the JSON answer."""
    done = subprocess.run([sys.executable, __file__, "--worker", json.dumps(job)], capture_output=True, text=True)
    if done.returncode:
        return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1][:200]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def machine() -> dict[str, Any]:
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    field = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in info.splitlines()[:30])}
    isa = "AVX-512" if " avx512f" in info else "AVX2" if " avx2" in info else "no AVX2"
    cpu = f"{field.get('model name', platform.processor())} (family {field.get('cpu family')}, model {field.get('model')}, {isa})"
    return {"cpu": cpu, "cores": len(os.sched_getaffinity(0)), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "python": platform.python_version()}


def crops(folder: Path) -> dict[int, str]:
    """The VS-SEG series cut to its first n slices, saved as NIfTI (the growth check reads those)."""
    import SimpleITK as sitk
    from MTSASegmenterLib.io.imageio import read_image

    image = read_image(SCANS["VS-SEG 512x512x120 (DICOM)"])
    paths = {}
    for n in CROPS:
        paths[n] = str(folder / f"vs_seg_{n}.nii.gz")
        sitk.WriteImage(image[:, :, :n], paths[n])
    return paths


def linear_fit_r2(x: list[float], y: list[float]) -> tuple[float, float]:
    """(slope, R^2) of the least-squares line: growth is linear when R^2 is close to 1."""
    slope, intercept = np.polyfit(x, y, 1)
    residual = np.sum((np.asarray(y) - (slope * np.asarray(x) + intercept)) ** 2)
    total = np.sum((np.asarray(y) - np.mean(y)) ** 2)
    return float(slope), float(1 - residual / total) if total > 0 else 1.0


def _flat(values: list[float]) -> bool:
    return max(values) <= 1.1 * min(values)


def table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


class Bench:
    """The parent: lays out the models, runs each measurement in its own process, prints tables."""

    def __init__(self, quick: bool, folder: Path) -> None:
        from MTSASegmenterLib.inference.predictor import default_batch_size
        from MTSASegmenterLib.model.complexity import complexity

        self.quick, self.folder = quick, folder
        self.slices = {"demo": 32 if quick else 128, "full": 8 if quick else 16}
        checkpoints = make_checkpoints(folder)
        self.models: dict[str, dict[str, Any]] = {}
        for name, (net_cfg, _) in model_configs().items():
            g = complexity(net_cfg)[1]
            width, peer_g = peer_width(g, net_cfg.in_channels, net_cfg.input_size)
            batch = default_batch_size(torch.device("cpu"), net_cfg)  # the default path's own choice
            base = {"checkpoint": checkpoints[name]["path"], "batch": batch, "size": name}
            self.models[f"MTSA-Net {name}"] = {**base, "gflops": g, "weights": checkpoints[name]["weights"]}
            self.models[f"BasicUNet w{width} (peer of {name})"] = {**base, "gflops": peer_g, "peer_width": width,
                                                                   "weights": "random"}
        self.results: dict[str, Any] = {"machine": machine(), "quick": quick, "models": self.models}
        limit = run({"kind": "matmul", "n": 2048 if quick else 4096, "seconds": 2.0 if quick else 5.0})
        self.results["matmul"] = limit
        self.limit = limit["gflops_per_s"]
        say("machine: " + json.dumps(self.results["machine"]))
        say(f"fp32 matmul {limit['n']}x{limit['n']}: {self.limit:.1f} GFLOP/s")

    def share(self, gflops_per_slice: float, slices: int, seconds: float) -> float:
        """Network FLOPs per second over the machine's matmul throughput."""
        return gflops_per_slice * slices / seconds / self.limit

    def network(self) -> None:
        rows, found = [], self.results.setdefault("network", {})
        for label, m in self.models.items():
            r = found[label] = run({"kind": "network", **m, "slices": self.slices[m["size"]]})
            rows.append([label, f"{m['gflops']:.2f}", m["batch"]] + (
                [r["error"], "", ""] if "error" in r else
                [f"{r['slices_per_s']:.2f}", f"{self.share(m['gflops'], r['slices'], r['seconds']):.0%}",
                 f"{r['peak_above_model_mb']:.0f}"]))
        say("\nNetwork only (predict_slices, default batch, warm):")
        say(table(["model", "GFLOPs/slice", "batch", "slices/s", "share of matmul limit", "peak above model (MB)"], rows))

    def volumes(self) -> None:
        rows, found = [], self.results.setdefault("volumes", {})
        jobs = {k: m for k, m in self.models.items() if not (self.quick and m["size"] == "full")}
        demo = self.models["MTSA-Net demo"]  # and with test-time flip averaging (each slice twice), to show its cost
        jobs["MTSA-Net demo, flip averaging"] = {**demo, "flip": True, "gflops": 2 * demo["gflops"]}
        for scan_label, scan in SCANS.items():
            if not scan.exists():
                say(f"skipped {scan_label}: {scan} not found (set MTSA_REAL_DATA)")
                continue
            for label, m in jobs.items():
                r = found[f"{label} | {scan_label}"] = run({"kind": "volume", **m, "scan": str(scan)})
                rows.append([scan_label, label] + ([r["error"], "", "", "", ""] if "error" in r else [
                    f"{r['seconds']:.1f}", f"{r['inference_s']:.1f}", r["predicted"],
                    f"{self.share(m['gflops'], r['predicted'], r['inference_s']):.0%}", f"{r['peak_above_model_mb']:.0f}"]))
        say("\nWhole volume, end to end (read, preprocess, network, map back, write .seg.nrrd + .json):")
        say(table(["scan", "model", "total (s)", "network (s)", "slices predicted", "network share of matmul limit",
                   "peak above model (MB)"], rows))
        rows = []
        for size in model_configs():
            ours, = (k for k, m in self.models.items() if m["size"] == size and "peer_width" not in m)
            peer, = (k for k, m in self.models.items() if m["size"] == size and "peer_width" in m)
            for scan_label in SCANS:
                a, b = found.get(f"{ours} | {scan_label}", {}), found.get(f"{peer} | {scan_label}", {})
                if "seconds" in a and "seconds" in b:
                    rows.append([scan_label, ours, peer, f"{a['seconds'] / b['seconds']:.2f}",
                                 f"{a['inference_s'] / b['inference_s']:.2f}"])
        self.results["ours_over_peer"] = rows
        say("\nOur time over the peer's (same path, same batching):")
        say(table(["scan", "ours", "peer", "end to end", "network"], rows))

    def growth(self) -> None:
        if not SCANS["VS-SEG 512x512x120 (DICOM)"].exists():
            say("skipped the growth check: VS-SEG series not found")
            return
        found, rows = self.results.setdefault("growth", {}), []
        for n, path in crops(self.folder).items():
            r = found[n] = run({"kind": "volume", **self.models["MTSA-Net demo"], "scan": path})
            rows.append([n] + ([r["error"], "", "", ""] if "error" in r else [
                f"{r['seconds']:.2f}", f"{r['inference_s']:.2f}", r["predicted"], f"{r['peak_above_model_mb']:.0f}"]))
        say("\nGrowth with the number of slices (VS-SEG series cut to n slices, as NIfTI; demo model):")
        say(table(["slices", "total (s)", "network (s)", "predicted", "peak above model (MB)"], rows))
        ok = {n: r for n, r in found.items() if "error" not in r}
        if len(ok) == len(CROPS):
            t_slope, t_r2 = linear_fit_r2(list(ok), [r["seconds"] for r in ok.values()])
            m_slope, m_r2 = linear_fit_r2(list(ok), [r["peak_above_model_mb"] for r in ok.values()])
            self.results["growth_fit"] = {"s_per_slice": t_slope, "time_r2": t_r2, "mb_per_slice": m_slope,
                                          "memory_r2": m_r2, "memory_flat": _flat([r["peak_above_model_mb"] for r in ok.values()])}
            say(f"linear fit: {t_slope * 1000:.1f} ms per slice (R^2 {t_r2:.3f}); "
                f"{m_slope:.2f} MB per slice (R^2 {m_r2:.3f})")

    def levers(self) -> None:
        header = ["model", "lever", "batch", "slices/s", "first batch (s)", "max |p - p_plain|", "peak above model (MB)"]
        say("\nLevers (network only; 'default' is what predict_slices does; 'plain' runs the network as loaded):")
        say("\n".join(table(header, []).splitlines()[:2]))
        found = self.results.setdefault("levers", {})
        for label in ("MTSA-Net demo", "MTSA-Net full"):
            m = self.models[label]
            runs = [(lever, m["batch"]) for lever in LEVERS] + [("default", b) for b in (1, 2, 4, 8, 16) if b != m["batch"]]
            for lever, b in runs:
                r = found[f"{label} | {lever} | batch {b}"] = run(
                    {"kind": "network", **m, "batch": b, "lever": lever, "slices": self.slices[m["size"]]})
                row = [label, lever, b] + ([r["error"], "", "", ""] if "error" in r else [
                    f"{r['slices_per_s']:.2f}", f"{r['first_batch_s']:.1f}", f"{r['max_probability_difference']:.1e}",
                    f"{r['peak_above_model_mb']:.0f}"])
                say(table(header, [row]).splitlines()[-1])

    def goals(self) -> None:
        r = self.results
        demo_brats = r.get("volumes", {}).get(f"MTSA-Net demo | {next(iter(SCANS))}", {})
        full = r.get("network", {}).get("MTSA-Net full", {})
        series = [v["peak_above_model_mb"] / 1024 for k, v in r.get("volumes", {}).items()
                  if "VS-SEG" in k and k.startswith("MTSA-Net") and "error" not in v]
        fit = r.get("growth_fit", {})
        goals = [  # (goal, measured, met?)
            ("demo model, BraTS end to end < 10 s", demo_brats.get("seconds"), lambda v: v < GOALS["demo_brats_s"]),
            ("full-size network >= 50% of the matmul limit",
             self.share(self.models["MTSA-Net full"]["gflops"], full["slices"], full["seconds"]) if "seconds" in full else None,
             lambda v: v >= GOALS["full_matmul_share"]),
            ("512x512x120 series, peak above the model < 2 GB (GB, worst MTSA-Net)", max(series, default=None),
             lambda v: v < GOALS["series_peak_gb"]),
            ("time linear in slices (R^2 >= 0.98)", fit.get("time_r2"), lambda v: v >= 0.98),
            ("memory at most linear in slices (R^2 >= 0.98, or flat within 10%)", fit.get("memory_r2"),
             lambda v: v >= 0.98 or fit["memory_flat"]),
        ]
        r["goals"] = {goal: {"measured": value, "met": None if value is None else bool(met(value))}
                      for goal, value, met in goals}
        say("\nGoals:")
        for goal, verdict in r["goals"].items():
            value = verdict["measured"]
            say(f"  {goal}: " + ("not measured" if value is None else
                                 f"{value:.3g} -> {'met' if verdict['met'] else 'NOT met'}"))


def say(text: str) -> None:
    print(text, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer slices; whole scans with the demo model only")
    parser.add_argument("--sections", default="network,volumes,growth",
                        help="comma-separated, from network, volumes, growth, levers (default: all but levers)")
    parser.add_argument("--out", type=Path, help="write every figure to this JSON file")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(json.loads(args.worker))
        return 0
    sections = args.sections.split(",")
    unknown = set(sections) - {"network", "volumes", "growth", "levers"}
    if unknown:
        parser.error(f"unknown section(s): {', '.join(sorted(unknown))}")
    with tempfile.TemporaryDirectory(prefix="mtsa-bench-") as tmp:
        bench = Bench(args.quick, Path(tmp))
        for section in sections:
            getattr(bench, section)()
    bench.goals()
    if args.out:
        args.out.write_text(json.dumps(bench.results, indent=2) + "\n")
        say(f"\nwritten {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
