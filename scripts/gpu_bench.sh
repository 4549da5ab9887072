#!/usr/bin/env bash
# GPU benchmark session used for docs/benchmarks.md. Runs from the repository root on a CUDA machine
# whose python3 has torch, timm, opencv and transformers; writes JSON results under ${OUT:-bench_out}.
set -uo pipefail
export PYTHONPATH="$PWD:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
OUT="${OUT:-bench_out}"; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
python3 -c "import torch, timm, transformers; print('torch', torch.__version__, 'timm', timm.__version__, 'transformers', transformers.__version__)"
bench() { local name=$1; shift; timeout 240 python3 -m dpt_ros.tools.bench --device cuda:0 --json "$OUT/$name.json" "$@" > "$OUT/$name.log" 2>&1; echo "== $name rc=$?"; python3 - "$OUT/$name.json" <<'PY'
import json, sys
try:
    r = json.load(open(sys.argv[1]))
except Exception as e:
    print("  no result:", e); sys.exit()
s = r["stages"]
print("  " + " ".join(f"{k}={v['median_ms']:.2f}" for k, v in s.items()), f"p95={s['total']['p95_ms']:.2f}",
      {k: r[k] for k in ("median_relative_difference_vs_fp32", "peak_memory_mib", "cameras", "compare_hf") if k in r})
PY
}
# engine correctness on the GPU: CUDA-graph replay and batching equal plain eager calls
timeout 120 python3 - <<'PY'
import numpy as np, torch
from dpt_ros.model.engine import InferenceEngine
from dpt_ros.tools.bench import sample_image
img = sample_image(480, 640)
eager = InferenceEngine("dpt_hybrid_midas", device="cuda:0", precision="fp16", allow_random_weights=True)
graphs = InferenceEngine("dpt_hybrid_midas", device="cuda:0", precision="fp16", allow_random_weights=True, cuda_graphs=True)
graphs.model.load_state_dict(eager.model.state_dict())
for e in (eager, graphs):
    e.model.scratch.output_conv[4].bias.data.fill_(1.0)
a, b = eager.infer(img), graphs.infer(img)
c = graphs.infer_batch([img, img])
print("graph vs eager max abs", float(np.abs(a - b).max()), "batch vs single", float(np.abs(c[1] - b).max()), "scale", float(np.abs(a).max()))
PY
case "${1:-all}" in
  all)
    bench hybrid_fp32_eager --preset dpt_hybrid_midas --precision fp32
    bench hybrid_fp16_eager --preset dpt_hybrid_midas --precision fp16
    bench hybrid_fp16_graphs --preset dpt_hybrid_midas --precision fp16 --cuda-graphs --cameras 4 --compare-hf
    bench hybrid_bf16_graphs --preset dpt_hybrid_midas --precision bf16 --cuda-graphs
    bench large_fp16_graphs --preset dpt_large_midas --precision fp16 --cuda-graphs --cameras 4 --compare-hf
    bench kitti_fp16_graphs --preset dpt_hybrid_kitti --precision fp16 --cuda-graphs --size 375x1242
    bench hybrid_fp16_compile_graphs --preset dpt_hybrid_midas --precision fp16 --cuda-graphs --compile
    bench large_fp16_compile_graphs --preset dpt_large_midas --precision fp16 --cuda-graphs --compile ;;
  compiled)  # the fastest configurations, with pinned copies and multi-camera batching
    bench hybrid_fp16_graphs --preset dpt_hybrid_midas --precision fp16 --cuda-graphs --cameras 4
    bench hybrid_fp16_compile_graphs --preset dpt_hybrid_midas --precision fp16 --cuda-graphs --compile --cameras 4
    bench large_fp16_compile_graphs --preset dpt_large_midas --precision fp16 --cuda-graphs --compile --cameras 4 ;;
esac
python3 -c "import glob, json; json.dump({f: json.load(open(f)) for f in sorted(glob.glob('$OUT/*.json'))}, open('$OUT/all_results.json.txt', 'w'), indent=1)"
rm -f "$OUT"/*.json "$OUT"/*.log
