"""The encoder's plan (executors/encoders/plan.py): runtime, device, precision, batch, threads
and lanes, decided without loading a model."""

import pytest
import torch

from executors.encoders.plan import CPU_BATCH, ONNX_CPU_BATCH, EncoderPlan
from executors.encoders.runtimes import RuntimeChoiceError


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    monkeypatch.delenv("ENCODER_RUNTIME", raising=False)
    monkeypatch.delenv("ENCODER_LANES", raising=False)


def test_a_cpu_plan_defaults_to_onnx_with_its_batch_in_fp32():
    plan = EncoderPlan.resolve("clip", device="cpu", num_threads=2)
    assert (plan.runtime, plan.device.type, plan.dtype) == ("onnx", "cpu", torch.float32)
    assert (plan.batch_size, plan.batch_requested, plan.lanes, plan.onnx_cuda) == (ONNX_CPU_BATCH, False, 1, False)


def test_torch_keeps_its_batch_and_one_lane_whatever_is_asked():
    plan = EncoderPlan.resolve("clip", device="cpu", runtime="torch", num_threads=2, lanes="auto")
    assert (plan.runtime, plan.batch_size, plan.lanes) == ("torch", CPU_BATCH, 1)
    asked = EncoderPlan.resolve("clip", device="cpu", runtime="onnx", batch_size=5, num_threads=2, lanes="auto")
    assert (asked.batch_size, asked.batch_requested, asked.lanes) == (5, True, 2)  # auto: a lane per thread


def test_bf16_sets_the_dtype_and_onnx_on_a_gpu_traces_on_the_cpu(monkeypatch):
    assert EncoderPlan.resolve("vit", device="cpu", runtime="torch-bf16", num_threads=1).dtype == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    plan = EncoderPlan.resolve("vit", device="cuda", runtime="onnx", num_threads=1, lanes="auto")
    assert (plan.device.type, plan.dtype, plan.onnx_cuda, plan.lanes) == ("cpu", torch.float32, True, 1)


def test_impossible_choices_are_user_errors_before_any_weights_load(monkeypatch):
    with pytest.raises(RuntimeChoiceError, match="unknown runtime 'tensorrt'"):
        EncoderPlan.resolve("clip", device="cpu", runtime="tensorrt")
    with pytest.raises(RuntimeChoiceError, match="auto or a number"):
        EncoderPlan.resolve("clip", device="cpu", runtime="onnx", lanes="many")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a, **k: "Tesla T4")
    with pytest.raises(RuntimeChoiceError, match="Tesla T4 has no bfloat16"):
        EncoderPlan.resolve("clip", device="cuda", runtime="torch-bf16")
