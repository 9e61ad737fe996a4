#!/usr/bin/env bash
# Benchmarks the paravirt-ops guest (Tests/Guests/PvOps) natively, under Microhv through the
# hypercall API and through the ABI ROM, and under Xen 4.17; prints the table and writes it to
# BENCHMARKS.md. Every QEMU run counts instructions (-icount shift=0,sleep=off), so the figures
# are deterministic, except the wall-clock ones (boot times, and the SMP runs on -smp 4, which need
# QEMU's vCPU threads in parallel). The harness is Tests/Bench (./bench.sh --help for the options).
# Exit status: 0 if anything was measured, 1 if nothing could be, 2 for a usage error.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export BENCH_CALLER_DIR=$PWD
dotnet build "$root/Tests/Bench/Bench.csproj" -nologo -v q -c Release >/dev/null || {
    echo "bench.sh: building Tests/Bench failed:" >&2
    dotnet build "$root/Tests/Bench/Bench.csproj" -nologo -v q -c Release >&2 || true
    exit 1
}
exec dotnet "$root/Tests/Bench/bin/Release/net10.0/Microhv.Bench.dll" "$@"
