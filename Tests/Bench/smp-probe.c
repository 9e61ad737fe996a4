/*
 * smp-probe: two cross-vCPU costs measured from user space in a Linux guest, for ./bench.sh's SMP
 * section (Tests/Bench/SmpBench.cs copies it, built static, into the dom0 disk). A host tool's
 * source, not part of any image. usage: smp-probe wake-cross|wake-same|flush-remote|flush-local N
 *
 *  wake-cross    N futex ping-pong round trips between two threads pinned to CPU 0 and CPU 1: each
 *                round trip wakes a thread blocked on the other vCPU twice (Linux sends a reschedule
 *                IPI each time; on Xen PV that is an event-channel IPI through the hypervisor)
 *  wake-same     the same with both threads pinned to CPU 0: no IPI, the rest of the path
 *  flush-remote  N times: write one page, mprotect it read-only, back to read-write, on CPU 0 while a
 *                second thread of the process spins on CPU 1, so each downgrade flushes CPU 1's TLB too
 *  flush-local   the same with no second thread: a local flush only
 *
 * Prints "smp-probe: MODE N NS" with NS the mean nanoseconds of one round trip / one iteration by
 * CLOCK_MONOTONIC.
 */
#define _GNU_SOURCE
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static _Atomic int turn;   /* 0: the main thread's turn, 1: the partner's */
static _Atomic int stop;
static long rounds;

static void pin(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0) { perror("smp-probe: sched_setaffinity"); exit(1); }
}

static void futex_wait(_Atomic int *addr, int val) { syscall(SYS_futex, addr, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0); }
static void futex_wake(_Atomic int *addr) { syscall(SYS_futex, addr, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0); }

static long long now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void *partner_pingpong(void *cpu)
{
    pin((int)(long)cpu);
    for (long i = 0; i < rounds; i++) {
        while (atomic_load(&turn) == 0) futex_wait(&turn, 0);
        atomic_store(&turn, 0);
        futex_wake(&turn);
    }
    return NULL;
}

static void *partner_spin(void *unused)
{
    (void)unused;
    pin(1);
    while (!atomic_load(&stop)) { }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 3 || (rounds = atol(argv[2])) <= 0) {
        fprintf(stderr, "usage: smp-probe wake-cross|wake-same|flush-remote|flush-local N\n");
        return 2;
    }
    const char *mode = argv[1];
    pthread_t partner;
    int threaded = 1;
    long long start, end;
    pin(0);
    if (!strcmp(mode, "wake-cross") || !strcmp(mode, "wake-same")) {
        pthread_create(&partner, NULL, partner_pingpong, (void *)(long)(mode[5] == 'c' ? 1 : 0));
        start = now_ns();
        for (long i = 0; i < rounds; i++) {
            atomic_store(&turn, 1);
            futex_wake(&turn);
            while (atomic_load(&turn) == 1) futex_wait(&turn, 1);
        }
        end = now_ns();
    } else if (!strcmp(mode, "flush-remote") || !strcmp(mode, "flush-local")) {
        volatile char *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (page == MAP_FAILED) { perror("smp-probe: mmap"); return 1; }
        page[0] = 1;
        threaded = !strcmp(mode, "flush-remote");
        if (threaded) {
            pthread_create(&partner, NULL, partner_spin, NULL);
            usleep(100000);   /* the partner is running on CPU 1 */
        }
        start = now_ns();
        for (long i = 0; i < rounds; i++) {
            page[0] = (char)i;
            if (mprotect((void *)page, 4096, PROT_READ) || mprotect((void *)page, 4096, PROT_READ | PROT_WRITE)) {
                perror("smp-probe: mprotect");
                return 1;
            }
        }
        end = now_ns();
        atomic_store(&stop, 1);
    } else {
        fprintf(stderr, "smp-probe: unknown mode %s\n", mode);
        return 2;
    }
    if (threaded) pthread_join(partner, NULL);
    printf("smp-probe: %s %ld %lld\n", mode, rounds, (end - start) / rounds);
    return 0;
}
