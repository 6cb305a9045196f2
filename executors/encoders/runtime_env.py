"""The encoders' runtime names and the environment variables they read, in a module without
heavy imports: the CLI parses arguments with them, and the flow and the k8s export set them,
before (or without) loading torch. executors/encoders/runtimes.py acts on them."""

RUNTIMES = ("torch", "onnx", "onnx-int8")
CHOICES = ("auto", *RUNTIMES)
ENV_RUNTIME = "ENCODER_RUNTIME"  # empty or unset: auto
ENV_LANES = "ENCODER_LANES"  # 1 (default) or auto: see runtimes.index_lanes
ENV_CACHE = "IMGSEARCH_ONNX_CACHE"
ENV_CALIBRATION = "IMGSEARCH_INT8_CALIBRATION"  # a folder of images for static int8
