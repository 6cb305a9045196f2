"""executors/encoders/configs/: one executor config per registered encoder."""

import yaml

from executors.encoders.specs import SPECS
from imgsearch.deploy.names import HEADER


def encoder_configs() -> dict[str, str]:
    """executors/encoders/configs/<name>.yml for every spec: the flow's `uses:` for that encoder."""
    header = HEADER.replace("from flows/index.yml", "from the encoder registry (executors/encoders/specs.py)")
    header += (
        "# batch_size 0: fitted to the runtime and the device where the encoder starts (executors/encoders/);\n"
        "# runtime: torch | onnx | torch-bf16 | onnx-int8 | auto, null: $ENCODER_RUNTIME, else auto.\n"
    )
    configs = {}
    for name, spec in SPECS.items():
        settings = {"name": name, "model": None, "batch_size": spec.batch_size}
        if spec.local_model:
            settings["runtime"] = None
        configs[f"executors/encoders/configs/{name}.yml"] = header + yaml.safe_dump(
            {"jtype": spec.executor, "py_modules": [spec.module], "with": settings}, sort_keys=False
        )
    return configs
