"""gluekit.device: where models run, and that every model meets its inputs on its own device.

No GPU here: the accelerator is injected. ``meta`` is a device that is not the CPU and holds no
memory, so loading "on the accelerator" goes through the real code path (from_pretrained with a
device map, PEFT's adapter layers following their base layers), and a model on it that received a
CPU tensor would be caught by the hooks below.
"""
from types import SimpleNamespace

import pytest
import torch

from gluekit.device import accelerator, describe, dtype_for, model_device, where
from gluekit.errors import GluekitError

GiB = 1024 ** 3


@pytest.fixture
def two_gpus(monkeypatch):
    """torch as it looks on a machine with two NVIDIA H200s (nothing is allocated on them)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: "NVIDIA H200")


def test_the_cpu_without_cuda_and_cuda_local_rank_with_it(two_gpus, monkeypatch):
    assert accelerator(environ={}) == torch.device("cuda", 0)
    assert accelerator(environ={"LOCAL_RANK": "1"}) == torch.device("cuda", 1)  # the Trainer's device on rank 1
    assert accelerator(environ={"GLUEKIT_DEVICE": "cpu"}) == torch.device("cpu")  # keeps the GPUs free
    assert accelerator("cuda:1", environ={"GLUEKIT_DEVICE": "cpu"}) == torch.device("cuda", 1)  # the argument wins
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert accelerator(environ={}) == torch.device("cpu")
    assert accelerator("meta") == torch.device("meta")


def test_a_device_that_is_not_there_is_named_with_what_is(two_gpus, monkeypatch):
    with pytest.raises(GluekitError) as e:
        accelerator(environ={"GLUEKIT_DEVICE": "gpu0"})
    assert e.value.problems == ["`GLUEKIT_DEVICE`: not a torch device, got 'gpu0'. Use cpu, cuda or cuda:N."]
    with pytest.raises(GluekitError) as e:
        accelerator("cuda:2")
    assert e.value.problems == ["`device`: 'cuda:2' asked for, but this machine has 2 CUDA device(s), cuda:0 to cuda:1."]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(GluekitError) as e:
        accelerator("cuda")
    assert e.value.problems == [f"`device`: 'cuda' asked for, but this machine has no CUDA device (torch {torch.__version__}). "
                                "Use cpu, or install a CUDA build of torch on a GPU machine."]


def test_dtype_and_the_line_that_says_where(two_gpus):
    assert dtype_for("cpu") == torch.float32 and dtype_for("cuda:1") == torch.bfloat16
    assert describe("cpu") == "runs on the CPU (float32)"
    assert describe("cuda") == "runs on cuda:0 (NVIDIA H200, bf16)"
    assert describe(torch.device("cuda", 1), torch.float16) == "runs on cuda:1 (NVIDIA H200, fp16)"
    assert describe("meta") == "runs on meta (bf16)"


def test_load_model_puts_the_weights_on_the_device_it_is_given():
    from gluekit.models import load_model

    on_cpu = load_model()
    assert {p.device.type for p in on_cpu.parameters()} == {"cpu"} and on_cpu.dtype == torch.float32
    on_acc = load_model(device="meta")  # the accelerator path: from_pretrained with a device map
    assert {p.device.type for p in on_acc.parameters()} == {"meta"} and on_acc.dtype == torch.bfloat16
    assert where(on_acc) == "runs on meta (bf16)" and where(on_cpu) == "runs on the CPU (float32)"
    assert model_device(on_acc) == torch.device("meta")


# ---------------------------------------------------------------- inputs meet the model on its device

class Stop(Exception):
    """Raised at ``generate``: a model on ``meta`` computes nothing, and the devices are known by then."""


class DeviceCheck:
    """Records, for every forward pass and every ``generate`` call of ``model``, the devices of the
    tensors it receives and of its weights; ``generate`` then stops (nothing to compute on ``meta``)."""

    def __init__(self, model):
        self.model, self.calls = model, []
        weights = next(model.parameters()).device
        inner = model.get_base_model() if hasattr(model, "get_base_model") else model

        def tensors(args, kwargs):
            out = []
            for v in list(args) + list(kwargs.values()):
                if isinstance(v, torch.Tensor):
                    out.append(v.device)
                elif hasattr(v, "layers"):  # a KV cache
                    out += [t.device for layer in v.layers for t in (getattr(layer, "keys", None),) if t is not None]
            return out

        def pre_hook(module, args, kwargs):
            self.calls.append(("forward", weights, tensors(args, kwargs)))

        def generate(*args, **kwargs):
            self.calls.append(("generate", weights, tensors(args, kwargs)))
            raise Stop

        self.handle = inner.register_forward_pre_hook(pre_hook, with_kwargs=True)
        model.generate = generate

    def close(self):
        self.handle.remove()
        del self.model.generate  # the class's own generate again

    def mismatches(self):
        return [(kind, str(w), [str(d) for d in ds]) for kind, w, ds in self.calls if any(d != w for d in ds)]


@pytest.fixture(scope="module")
def on_accelerator(tmp_path_factory):
    """The tiny GLM + a saved LoRA adapter, loaded on the injected accelerator ("meta") as load_with_adapter loads it."""
    from peft import LoraConfig

    from gluekit.generate import load_with_adapter
    from gluekit.lora import apply_peft
    from gluekit.models import load_model, load_tokenizer

    net, _ = apply_peft(load_model(), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                task_type="CAUSAL_LM"), verbose=False)
    folder = tmp_path_factory.mktemp("adapter")
    net.save_pretrained(str(folder))
    load_tokenizer().save_pretrained(str(folder))
    with pytest.warns(UserWarning):  # "copying ... to a meta parameter ... is a no-op": meta holds no values
        model, tok = load_with_adapter(adapter=folder, device="meta")
    return model, tok


def test_the_adapter_follows_the_base_model_onto_the_accelerator(on_accelerator):
    model, _ = on_accelerator
    lora = [p for n, p in model.named_parameters() if "lora_" in n]
    assert lora and {p.device.type for p in model.parameters()} == {"meta"}


def test_generation_sends_its_inputs_to_the_models_device(on_accelerator, demo_dir):
    """chat, compare, evaluate_rows and the shared-prefix cache: every tensor a forward pass or generate
    receives is on the device of the model's weights (here the injected accelerator, not the CPU)."""
    from gluekit.data import build_eval_rows, read_jsonl
    from gluekit.evaluate import evaluate_rows, generate_replies
    from gluekit.generate import chat, compare

    model, tok = on_accelerator
    check = DeviceCheck(model)
    try:
        with pytest.raises(Stop):
            chat(model, tok, "成都有什么好吃的?", max_new_tokens=4)
        rows = read_jsonl(demo_dir / "dev.jsonl")[:4]
        with pytest.raises(Stop):
            compare(model, model, tok, rows, combine=False, max_new_tokens=4)
        ev = build_eval_rows(rows, tok, False, 256, 64)
        with pytest.raises(Stop):
            evaluate_rows(model, tok, ev, batch_size=4)
        tools = [r for r in read_jsonl(demo_dir / "dev.jsonl") if "tools" in r["messages"][0]][:2]
        prompts = [r["prompt_ids"] for r in build_eval_rows(tools, tok, False, 256, 64)][:2]
        with pytest.raises(Stop):  # two prompts sharing a tool list: its KV cache is computed once, first
            generate_replies(model, tok, prompts, max_new_tokens=4)
    finally:
        check.close()
    kinds = [k for k, _, _ in check.calls]
    assert kinds.count("generate") == 4 and "forward" in kinds  # the prefix pass ran, then generate
    assert all(ds for _, _, ds in check.calls)
    assert check.mismatches() == []


def test_the_device_check_catches_inputs_left_on_the_cpu(on_accelerator):
    """The check above can fail: ids made on the CPU and handed to the model on the accelerator are caught."""
    model, tok = on_accelerator
    check = DeviceCheck(model)
    try:
        with pytest.raises(Stop):
            model.generate(input_ids=torch.tensor([tok.encode("你好")]))
    finally:
        check.close()
    assert check.mismatches() == [("generate", "meta", ["cpu"])]
