"""The deployed codec: real bitstreams from stage runners, equal to CompressAI's, cross-engine decodes,
and damaged or mismatched streams refused instead of decoded wrong."""

from __future__ import annotations

import pytest
import torch

from liccs.checks.crossdecode import cross_decode
from liccs.core.errors import InputError
from liccs.data import load_batch, open_source
from liccs.engines.autoregressive import single_thread
from liccs.engines.base import Runner
from liccs.engines.bitstream import BitstreamError, unframe
from liccs.engines.codec import DeployedCodec, bpp
from liccs.engines.factory import runner_for
from liccs.engines.int8_fit import plan_keep_fp32, rd_cost
from liccs.export.cache import ArtifactCache
from liccs.export.graphs import codec_graphs
from liccs.families import MSE_LAMBDAS
from liccs.pipeline import codec_roundtrip
from liccs.zoo import load_codec
from tests.engines.helpers import codec, stress_checkpoint

FAMILIES = ["bmshj2018-factorized@q1", "bmshj2018-hyperprior@q1", "mbt2018-mean@q1", "mbt2018@q1"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return ArtifactCache(tmp_path_factory.mktemp("codec"))


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize("engine", ["torch"])  # ort-cpu: every registered codec in tests/profiling/test_parity.py
def test_same_bytes_and_image_as_compressai(name, engine, kodak_crop, cache):
    model = codec(name)
    with single_thread():
        ref, ref_bytes = codec_roundtrip(model, kodak_crop)
    d = DeployedCodec.on_engine(model, engine, cache, exporter="torchscript")
    out = d.compress(kodak_crop)
    payload = sum(len(unframe(lst[0])[0]) for lst in out["strings"])
    assert payload == ref_bytes[0]
    x_hat = d.decompress(out["strings"], out["shape"], out["size"])["x_hat"]
    assert x_hat.shape == kodak_crop.shape and (x_hat - ref).abs().max().item() <= 1e-5
    (blob,) = d.encode(kodak_crop)
    assert torch.equal(d.decode(blob)["x_hat"], x_hat)
    assert bpp(blob, kodak_crop.shape[-2:]) == 8 * len(blob) / (75 * 117)


class _Drift(Runner):
    """A runner whose outputs drift by ``eps`` (as another engine's numerics could)."""

    def __init__(self, inner: Runner, eps: float) -> None:
        super().__init__(inner.name + "+drift")
        self.inner, self.eps = inner, eps

    def activate_impl(self):
        self.inner.activate()

    def get_input_metadata_impl(self):
        return self.inner.input_metadata()

    def infer_impl(self, feed):
        return {k: v * (1 + self.eps) for k, v in self.inner.infer(feed, check=False).items()}


@pytest.fixture(scope="module")
def stressed(tmp_path_factory):
    """Checkpoints made here whose latents spread over many entropy tables (random weights use one)."""
    d = tmp_path_factory.mktemp("ckpt")
    return {n: load_codec(n, stress_checkpoint(n, d / f"{n}.pt")) for n in ("bmshj2018-hyperprior@q1", "mbt2018@q1")}


@pytest.mark.parametrize("name,stage", [("bmshj2018-hyperprior@q1", "h_s"), ("mbt2018@q1", "entropy_parameters")])
def test_decoder_on_other_tables_is_caught(name, stage, stressed, kodak_crop, cache):
    model = stressed[name]
    enc = DeployedCodec.on_engine(model, "torch", cache, exporter="torchscript")
    out = enc.compress(kodak_crop)
    runners = dict(enc.runners, **{stage: _Drift(enc.runners[stage], 0.05)})
    drifted = DeployedCodec(model, runners, "torch+drift")
    drifted.activate()  # built from runners: its owner activates it
    with pytest.raises(BitstreamError, match="entropy tables"):
        drifted.decompress(out["strings"], out["shape"], out["size"])
    res = drifted.decompress(out["strings"], out["shape"], out["size"], on_mismatch="decode")
    assert res["tables_match"] == [False]
    same = enc.decompress(out["strings"], out["shape"], out["size"])["x_hat"]
    assert (res["x_hat"] - same).abs().max().item() > 1e-3


class _Across(Runner):
    """An h_s whose ``k`` scales nearest a table boundary come out a hair across it (another engine's last bits)."""

    def __init__(self, inner: Runner, table: torch.Tensor, k: int) -> None:
        super().__init__(inner.name + "+across")
        self.inner, self.table, self.k = inner, table[:-1].double(), k

    def activate_impl(self):
        self.inner.activate()

    def get_input_metadata_impl(self):
        return self.inner.input_metadata()

    def infer_impl(self, feed):
        (name, v), = self.inner.infer(feed, check=False).items()
        flat = v.reshape(-1).clone()
        ln = torch.log(flat.double().clamp(min=1e-9))
        dist, j = (ln[:, None] - torch.log(self.table)[None]).abs().min(1)
        for p in torch.argsort(dist)[: self.k].tolist():
            t = float(self.table[j[p]])
            flat[p] = t * (1 - 1e-6) if flat[p] >= t else t * (1 + 1e-6)
        return {name: flat.reshape(v.shape)}


@pytest.mark.parametrize("k", [1, 3])
def test_a_decoder_a_few_last_bits_off_repairs_the_indexes(k, stressed, kodak_crop, cache):
    """Scales a hair across a table boundary on the decoder are found by the stream's index checksum: the decode
    is the encoder's own, and counted in ``repaired``; more than the search allows stay refused."""
    model = stressed["bmshj2018-hyperprior@q1"]
    enc = DeployedCodec.on_engine(model, "torch", cache, exporter="torchscript")
    out = enc.compress(kodak_crop)
    table = model.gaussian_conditional.scale_table
    drifted = DeployedCodec(model, dict(enc.runners, h_s=_Across(enc.runners["h_s"], table, k)), "torch+across")
    drifted.activate()  # built from runners: its owner activates it
    res = drifted.decompress(out["strings"], out["shape"], out["size"])
    assert drifted.repaired == 1 and res["tables_match"] == [True]
    assert torch.equal(res["x_hat"], enc.decompress(out["strings"], out["shape"], out["size"])["x_hat"])
    many = DeployedCodec(model, dict(enc.runners, h_s=_Across(enc.runners["h_s"], table, 8)), "torch+across")
    many.activate()  # built from runners: its owner activates it
    with pytest.raises(BitstreamError, match="entropy tables"):
        many.decompress(out["strings"], out["shape"], out["size"])


def test_cross_engine_decode_torch_ort(stressed, kodak_crop, cache):
    model = stressed["bmshj2018-hyperprior@q1"]
    deployed = {e: DeployedCodec.on_engine(model, e, cache, exporter="torchscript") for e in ("torch", "ort-cpu")}
    records = cross_decode(model, deployed, [kodak_crop], ["kodim01-crop"])
    pairs = {(r.encoder, r.decoder) for r in records}
    assert pairs == {("torch", "ort-cpu"), ("torch", "compressai"), ("ort-cpu", "torch"), ("ort-cpu", "compressai")}
    for r in records:
        if r.tables_match is not False:  # same tables: only float noise separates the two decodes
            assert r.psnr_vs_same_db > 100, r
    assert all(r.identical for r in records if r.encoder == "torch" and r.decoder == "compressai")


def test_stream_of_another_model_is_refused(kodak_crop, cache):
    a = DeployedCodec.on_engine(codec("bmshj2018-hyperprior@q1"), "torch", cache, exporter="torchscript")
    b = DeployedCodec.on_engine(codec("mbt2018-mean@q1"), "torch", cache, exporter="torchscript")
    (blob,) = a.encode(kodak_crop)
    with pytest.raises(BitstreamError, match="written by another model.*this decoder is mbt2018-mean@q1"):
        b.decode(blob)
    cut = a.compress(kodak_crop)
    cut["strings"][0][0] = cut["strings"][0][0][:-4]
    with pytest.raises(BitstreamError, match="latent y of image 0: cut short"):
        a.decompress(cut["strings"], cut["shape"])
    with pytest.raises(InputError, match="float32"):
        a.compress((kodak_crop * 255).to(torch.uint8))
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        a.compress(kodak_crop * 2)
    with pytest.raises(InputError, match=r"\[0, 1\]; got min nan"):
        a.compress(kodak_crop.masked_fill(kodak_crop > 0.5, float("nan")))


def test_ort_sessions_of_the_codec_do_not_spin(kodak_crop, cache):
    """Idle ONNX Runtime threads that spin after each call take a core from the entropy coder's torch work."""
    d = DeployedCodec.on_engine(codec("bmshj2018-hyperprior@q1"), "ort-cpu", cache, exporter="torchscript")
    d.compress(kodak_crop)
    for name, r in d.runners.items():
        r.activate()
        opts = r._session.get_session_options()
        assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0", name


class _BatchDrift(Runner):
    """A runner whose numerics depend on the batch size, as a GPU's choice of convolution algorithm does."""

    def __init__(self, inner: Runner) -> None:
        super().__init__(inner.name + "+batch-drift")
        self.inner = inner

    def activate_impl(self):
        self.inner.activate()

    def get_input_metadata_impl(self):
        return self.inner.input_metadata()

    def infer_impl(self, feed):
        b = next(iter(feed.values())).shape[0]
        return {k: v * (1 + 0.05 * (b - 1)) for k, v in self.inner.infer(feed, check=False).items()}


@pytest.mark.parametrize("name", ["bmshj2018-hyperprior@q1", "mbt2018@q1"])
def test_a_batch_encodes_as_each_image_decodes(name, stressed, kodak_crop, cache):
    """h_s runs one image at a time on both sides, so a batch-dependent engine still picks the same tables
    (an H200 encoder at batch 256 did not, before)."""
    model = stressed[name]
    base = DeployedCodec.on_engine(model, "torch", cache, exporter="torchscript")
    d = DeployedCodec(model, dict(base.runners, h_s=_BatchDrift(base.runners["h_s"])), "torch+batch-drift")
    d.activate()  # built from runners: its owner activates it
    batch = torch.cat([kodak_crop, kodak_crop.flip(-1), kodak_crop.flip(-2)])
    blobs = d.encode(batch)
    for i, blob in enumerate(blobs):
        assert d.decode(blob)["tables_match"], i
        assert base.decode(blob)["tables_match"], i


def test_int8_codec_streams_decode_on_fp32_engines(stressed, kodak_crop, cache):
    """The int8 codec quantizes g_a/g_s and runs the table-choosing stages on its fp32 twin: its streams decode on
    torch and ort-cpu with the encoder's tables, and theirs on it; all of it in int8 (hyper_fp32=False) does not."""
    model = stressed["bmshj2018-hyperprior@q1"]
    int8 = DeployedCodec.on_engine(model, "ort-cpu-int8", cache, calibration_images=kodak_crop, exporter="torchscript")
    assert int8.engine == "ort-cpu-int8"
    assert ".int8" in str(int8.runners["g_s"].activate() or int8.runners["g_s"].path)
    assert ".int8" not in str(int8.runners["h_s"].activate() or int8.runners["h_s"].path)
    fp32 = {e: DeployedCodec.on_engine(model, e, cache, exporter="torchscript") for e in ("torch", "ort-cpu")}
    records = cross_decode(model, {"ort-cpu-int8": int8, **fp32}, [kodak_crop], ["crop"], with_compressai=False)
    assert records and all(r.tables_match for r in records), [(r.encoder, r.decoder) for r in records]
    all_int8 = DeployedCodec.on_engine(model, "ort-cpu-int8", cache, calibration_images=kodak_crop, hyper_fp32=False,
                                       exporter="torchscript")
    out = all_int8.compress(kodak_crop)
    res = fp32["ort-cpu"].decompress(out["strings"], out["shape"], out["size"], on_mismatch="decode")
    assert not all(res["tables_match"])  # the reason for the fp32 hyper path


def test_int8_codec_returns_the_layers_that_cost_rate_distortion_to_fp32(shared_data, cache):
    """The mini q8 codec with every sizeable layer in int8 costs more than 2% of its rate in RD cost; the fit measures
    each such layer alone in int8 and keeps in int8 only what fits in 2% (real bitstreams of the calibration images),
    the costliest layer in fp32; layers under 5% of their stage's multiply-adds stay fp32 unmeasured."""
    batch = load_batch(open_source("cifar10-test"), [round(i * 9999 / 15) for i in range(16)])
    x = torch.nn.functional.interpolate(batch.images, size=(64, 64), mode="bilinear", antialias=True).clamp(0, 1)
    model = load_codec("mini-bmshj2018-hyperprior@q8", "pretrained")
    fitted = DeployedCodec.on_engine(model, "ort-cpu-int8", cache, calibration_images=x, exporter="torchscript")
    plan = fitted.int8_plan
    assert plan["lambda"] == MSE_LAMBDAS[8] and plan["within"]
    assert plan["cost_all_int8"] - plan["cost_fp32"] > 0.02 * plan["fp32_bpp"]
    kept = [(s, i) for s, idx in plan["fp32_layers"].items() for i in idx]
    assert 1 <= len(kept) < sum(plan["layers"].values())
    small = {k for k, v in plan["macs_share"].items() if v < 0.05}  # the GDNs' 1×1 convolutions here
    assert small and small <= {f"{s}[{i}]" for s, i in kept}  # not worth int8: kept fp32, not measured
    assert set(plan["sensitivity"]) == set(plan["macs_share"]) - small
    costliest = max(plan["sensitivity"], key=plan["sensitivity"].get)
    assert costliest in {f"{s}[{i}]" for s, i in kept}
    # the plan's cost is what the installed runners give: measured again, independently of the fit
    bpp, cost = rd_cost(fitted, x, fitted.runners, plan["lambda"])
    assert cost == pytest.approx(plan["cost"], rel=1e-9)
    assert (cost - plan["cost_fp32"]) / plan["fp32_bpp"] <= 0.02
    whole = DeployedCodec.on_engine(model, "ort-cpu-int8", cache, calibration_images=x, int8_tolerance=None,
                                    exporter="torchscript")
    assert whole.int8_plan is None
    assert rd_cost(whole, x, whole.runners, plan["lambda"])[1] - plan["cost_fp32"] > 0.5 * plan["fp32_bpp"]


@pytest.mark.parametrize("name", ["mini-bmshj2018-hyperprior@q8", "mini-mbt2018-mean@q8"])
def test_the_transfer_graph_is_quantized_as_the_int8_codec_runs(name, shared_data, cache, tmp_path):
    """``reconstruct`` on the int8 engine with the fitted codec's fp32 nodes (its table stages, where the graph computes
    them, and the fit's layers) gives the fitted codec's decoded images; quantized whole, it does not. (The trained
    hyperprior q8 is committed; the mean-scale model is a stressed random one, whose means come from h_s.)"""
    batch = load_batch(open_source("cifar10-test"), [round(i * 9999 / 15) for i in range(16)])
    x = torch.nn.functional.interpolate(batch.images, size=(64, 64), mode="bilinear", antialias=True).clamp(0, 1)
    mean = "mean" in name
    model = load_codec(name, stress_checkpoint(name, tmp_path / "m.pt") if mean else "pretrained")
    fitted = DeployedCodec.on_engine(model, "ort-cpu-int8", cache, calibration_images=x, exporter="torchscript")
    rec = codec_graphs(model)[0]["reconstruct"]
    keep = plan_keep_fp32(fitted, rec, cache, exporter="torchscript")
    hyper = 6 if mean else 0  # h_a and h_s compute the means; the scale hyperprior's images need neither
    plan = fitted.int8_plan["fp32_layers"]
    assert len(keep) == len(plan["g_a"]) + hyper + len(plan["g_s"]) < 14 + hyper
    assert set(range(7, 7 + hyper)) <= set(keep)  # the hyper path's nodes, between g_a's and g_s's
    ref = fitted.decompress(**fitted.compress(x))["x_hat"]
    diffs = []
    for k in (keep, ()):
        with runner_for("ort-cpu-int8", rec, cache, exporter="torchscript", calibration=[{"x": x.numpy()}],
                        keep_fp32=k) as r:
            diffs.append(float((torch.as_tensor(next(iter(r.infer({"x": x}).values()))) - ref).abs().mean()))
    assert diffs[0] * 10 < diffs[1] if mean else diffs[0] < 1e-6 < 1e-2 < diffs[1]


def test_int8_fit_needs_a_lambda_for_a_codec_without_a_quality(cache, kodak_crop):
    """A codec whose name gives no CompressAI quality has no λ to weigh distortion by: a clear error, not a guess."""
    model = load_codec("mini-bmshj2018-hyperprior@q1", "pretrained")
    model.liccs_name = "my-codec"
    with pytest.raises(InputError, match="int8_lambda"):
        DeployedCodec.on_engine(model, "ort-cpu-int8", cache, calibration_images=kodak_crop[..., :64, :64])


@pytest.mark.parametrize("name", FAMILIES)
def test_each_familys_coder_gives_the_profiled_steps_and_they_decode_as_compressai(name, kodak_crop, cache):
    from liccs.stages.profile import coder_stages

    model = codec(name)
    with DeployedCodec.on_engine(model, "torch", cache, exporter="torchscript") as d, single_thread():
        ours, theirs = coder_stages(model, d, kodak_crop), coder_stages(model, d, kodak_crop, compressai=True)
        assert set(ours) == set(theirs) and {"entropy_encode", "entropy_decode"} <= set(ours)
        # table indexes are their own step wherever y is coded on a hyperprior's scales, at once
        assert ("build_indexes" in ours) is (name.split("@")[0] in ("bmshj2018-hyperprior", "mbt2018-mean"))
        for fn in [*ours.values(), *theirs.values()]:
            fn()
        if name.startswith("mbt2018@"):
            return  # the context loop has one coder (the deployed runners'), on both sides
        a, b = ours["entropy_decode"](), theirs["entropy_decode"]()
        for x, y in zip(a if isinstance(a, tuple) else (a,), b if isinstance(b, tuple) else (b,), strict=True):
            assert torch.equal(x, y)
