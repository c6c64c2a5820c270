#!/bin/bash
# Before/after engine latency in one sitting: the two binaries alternate, 3 runs each.
for i in 1 2 3; do
  for v in before after; do
    /tmp/hlfp-$v bench --threads 2 --iters 15 --warmup 3 --json --no-plot > /work/bench/$v.$i.json 2>/dev/null
  done
done
echo done
