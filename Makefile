# Vigil's entry points. Each target sets up what it needs itself (scripts/setup.sh).
.PHONY: demo test bench soak chaos setup build lint fmt broker-start broker-stop clean gpu-prepare gpu-bench

## Run the main job end to end on a local broker started here.
demo:
	@scripts/demo.sh

## Everything the tests need, then the tests (what CI runs).
test:
	@scripts/test.sh

## Benchmarks with their baselines; reports under target/bench/.
bench:
	@scripts/bench.sh

## The fault table at full length (broker killed 20 s, black hole 30 s, latency 60 s; 50k events at 2k/s;
## then the broker away 5 min 20 s, past librdkafka's default message timeout). VIGIL_CHAOS_FAULTS=long-kill picks one.
chaos:
	@VIGIL_CHAOS=full scripts/test.sh -p vigil-e2e --test it faults:: -- --nocapture

## The demo's workload for an hour with every service's memory sampled; target/soak/report.json.
soak:
	@scripts/soak.sh

## The sentence encoder on a GPU machine: prepare here (CUDA bundle + a cuda build of `vigil` in .gpu),
## then run gpu-bench there (texts/s at batch 64/256/1024, FP32 and FP16, CPU parity; target/gpu/).
gpu-prepare:
	@scripts/gpu-prepare.sh

gpu-bench:
	@scripts/gpu-bench.sh

setup:
	@scripts/setup.sh

build:
	cargo build --workspace --release --bins

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

fmt:
	cargo fmt --all

broker-start:
	@scripts/kafka.sh start

broker-stop:
	@scripts/kafka.sh stop

clean:
	cargo clean
	rm -rf .cache
