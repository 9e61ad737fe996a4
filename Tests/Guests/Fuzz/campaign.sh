#!/usr/bin/env bash
# A long fuzzing campaign for a developer's machine: Microhv with a canary domain and FUZZERS fuzz
# domains per boot, boots of consecutive seeds until SEEDS seeds have run. Prints each boot's result,
# the calls per second, and every failing seed with the log it left (a failing seed is replayed with
# log=1 logfrom=K on its module line to see its calls).
#   Tests/Guests/Fuzz/campaign.sh [--seeds N] [--first S] [--calls N] [--fuzzers N] [--timeout SECONDS] [--out DIR] [--log-from K]
# --out: where the ISO and the boots' logs go (default build/fuzz-campaign); --log-from K: every fuzzer
# logs its calls from call K on (log=1 logfrom=K).
set -u
cd "$(dirname "$0")/../../.."
seeds=40 first=1000 calls=1000000 fuzzers=4 timeout=1800 out=build/fuzz-campaign logfrom=
while [ $# -gt 0 ]; do
    case "$1" in
        --seeds) seeds=$2; shift 2 ;;
        --first) first=$2; shift 2 ;;
        --calls) calls=$2; shift 2 ;;
        --fuzzers) fuzzers=$2; shift 2 ;;
        --timeout) timeout=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        --log-from) logfrom=$2; shift 2 ;;
        -h|--help|*) echo "usage: $0 [--seeds N] [--first S] [--calls N] [--fuzzers N] [--timeout SECONDS] [--out DIR] [--log-from K]" >&2; exit 2 ;;
    esac
done
dotnet build Kernel/Kernel.csproj -nologo -v q >/dev/null || exit 1
dotnet build Tests/Guests/Fuzz/Fuzz.csproj -nologo -v q >/dev/null || exit 1
mkdir -p "$out"
total=0 failed=0 start=$(date +%s)
seed=$first
while [ $((seed - first)) -lt "$seeds" ]; do
    args=(build/fuzz.elf "name=canary pages=2048 initial -- mode=canary fuzzers=$fuzzers wait=$timeout")
    list=""
    for ((f = 0; f < fuzzers && seed - first < seeds; f++, seed++)); do
        args+=(build/fuzz.elf "name=fuzz$seed pages=2048 -- seed=$seed calls=$calls${logfrom:+ log=1 logfrom=$logfrom}")
        list="$list $seed"
    done
    n=$(( $(echo $list | wc -w) ))
    # The canary was told $fuzzers fuzzers; the last boot may have fewer.
    args[1]="name=canary pages=2048 initial -- mode=canary fuzzers=$n wait=$timeout"
    iso="$out/boot.iso" log="$out/seeds$(echo $list | tr ' ' '-').log"
    Boot/mkiso.sh build/microhv.elf "$iso" "microhv.log=info microhv.exit=isa-debug-exit" "${args[@]}" >/dev/null 2>&1 || exit 1
    t0=$(date +%s)
    timeout "$timeout" qemu-system-x86_64 -m 512 -cpu max -cdrom "$iso" -serial stdio -display none -no-reboot -nic none \
        -device isa-debug-exit,iobase=0xf4,iosize=0x04 </dev/null >"$log" 2>&1
    status=$?
    t=$(( $(date +%s) - t0 )); [ "$t" -gt 0 ] || t=1
    done_calls=$(grep -a -o 'fuzz: seed [0-9]*: [0-9]* calls done' "$log" | awk '{s += $4} END {print s + 0}')
    total=$((total + done_calls))
    bad=""
    grep -a -q 'FATAL' "$log" && bad="$bad FATAL"
    grep -a -q ' crashed' "$log" && bad="$bad crash"
    grep -a -q 'canary changed\|canary.s pattern' "$log" && bad="$bad canary"
    grep -a -q ' [1-9][0-9]* unexpected' "$log" && bad="$bad unexpected-trap"
    grep -a -q 'summary: frames: .*leaked\|differ' "$log" && bad="$bad frames"
    [ "$status" -eq 1 ] || bad="$bad exit-$status"
    if [ -n "$bad" ]; then
        failed=$((failed + 1))
        echo "seeds$list: FAIL ($bad) after ${t}s, log $log"
    else
        echo "seeds$list: $done_calls calls in ${t}s ($((done_calls / t)) calls/s)"
    fi
done
elapsed=$(( $(date +%s) - start )); [ "$elapsed" -gt 0 ] || elapsed=1
echo "campaign: $total calls in ${elapsed}s ($((total / elapsed)) calls/s), $failed failing boot(s)"
[ "$failed" -eq 0 ]
