"""A child for tests/test_damage.py: prints progress on stderr, then fails with a traceback (as a crashed
training run does)."""

import sys

print("step 1 loss 9.0", file=sys.stderr, flush=True)
raise ValueError("tokens shard 00003 is from another tokenizer")
