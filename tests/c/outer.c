/* outer: a seccomp layer around a command, as a container runtime's default profile is
 * around everything in a container.
 *
 *   outer CALL=ERRNO... -- COMMAND [ARG...]
 *   outer probe
 *
 * The first sets no_new_privs, installs a filter under which each CALL fails with ERRNO
 * (a number) and every other call runs, then execs COMMAND. The filter knows the calls
 * of the table below by their x86_64, x32 and i386 numbers, picked by the arch of each
 * call; a call of any other arch kills the process. tests/conftest.py says which calls
 * each runtime refuses (RUNTIME_REFUSALS).
 *
 * probe makes each call of the table, harmlessly (bad or empty arguments), and prints
 * "CALL 0" where it ran or "CALL ERRNO" where it failed: natively none fails with EPERM
 * or ENOSYS. It takes the numbers from the C library's headers, not from the table, so
 * that the 64- and 32-bit builds, run under the layer, check the table as well.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#define X32_SYSCALL_BIT 0x40000000u

static const struct call {
    const char *name;
    unsigned on_x86_64, on_x32, on_i386;  /* its numbers (i386 is a macro of gcc -m32) */
} calls[] = {
    {"pidfd_getfd", 438, X32_SYSCALL_BIT | 438, 438},
    {"kcmp", 312, X32_SYSCALL_BIT | 312, 349},
    {"clone3", 435, X32_SYSCALL_BIT | 435, 435},
    {"process_vm_readv", 310, X32_SYSCALL_BIT | 539, 347},
    {"process_vm_writev", 311, X32_SYSCALL_BIT | 540, 348},
};
#define NCALLS (sizeof calls / sizeof calls[0])

static long probe_call(const char *name) {
    pid_t self = getpid();
    if (strcmp(name, "pidfd_getfd") == 0) return syscall(SYS_pidfd_getfd, -1, 0, 0);
    if (strcmp(name, "kcmp") == 0) return syscall(SYS_kcmp, self, self, 1 /* KCMP_VM */, 0, 0);
    if (strcmp(name, "clone3") == 0) return syscall(SYS_clone3, NULL, 0);  /* EINVAL natively */
    if (strcmp(name, "process_vm_readv") == 0) return syscall(SYS_process_vm_readv, self, NULL, 0, NULL, 0, 0);
    return syscall(SYS_process_vm_writev, self, NULL, 0, NULL, 0, 0);
}

static int probe(void) {
    for (size_t i = 0; i < NCALLS; i++)
        printf("%s %d\n", calls[i].name, probe_call(calls[i].name) < 0 ? errno : 0);
    return 0;
}

/* The instructions that answer one arch's calls: load the number, then for each refused
 * call "equal? return its errno", then allow. */
static size_t arch_block(struct sock_filter *out, const unsigned *numbers, const unsigned *errnos,
                         size_t refused, int is_x86_64) {
    size_t n = 0;
    out[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
    for (size_t i = 0; i < refused; i++) {
        const struct call *call = &calls[numbers[i]];
        unsigned each[2] = {is_x86_64 ? call->on_x86_64 : call->on_i386, call->on_x32};
        for (int k = 0; k < (is_x86_64 ? 2 : 1); k++) {
            out[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, each[k], 0, 1);
            out[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (errnos[i] & SECCOMP_RET_DATA));
        }
    }
    out[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    return n;
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "probe") == 0) return probe();
    unsigned numbers[NCALLS], errnos[NCALLS];
    size_t refused = 0;
    int i = 1;
    for (; i < argc && strcmp(argv[i], "--") != 0; i++) {
        char *equals = strchr(argv[i], '=');
        size_t k = 0;
        while (equals && k < NCALLS && (strlen(calls[k].name) != (size_t)(equals - argv[i]) ||
                                        strncmp(calls[k].name, argv[i], equals - argv[i]) != 0))
            k++;
        if (!equals || k == NCALLS || refused == NCALLS) {
            fprintf(stderr, "outer: not a known CALL=ERRNO: %s\n", argv[i]);
            return 2;
        }
        numbers[refused] = k;
        errnos[refused++] = (unsigned)strtoul(equals + 1, NULL, 10);
    }
    if (i + 1 >= argc) {
        fprintf(stderr, "usage: outer CALL=ERRNO... -- COMMAND [ARG...] | outer probe\n");
        return 2;
    }

    /* arch, jump, x86_64 block, jump, i386 block, kill */
    struct sock_filter program[2 + (2 + 4 * NCALLS) + 1 + (2 + 2 * NCALLS) + 1];
    size_t n = 0;
    program[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
    size_t jump = n++;
    size_t length = arch_block(program + n, numbers, errnos, refused, 1);
    program[jump] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 0, length);
    n += length;
    jump = n++;
    length = arch_block(program + n, numbers, errnos, refused, 0);
    program[jump] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_I386, 0, length);
    n += length;
    program[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
    struct sock_fprog fprog = {.len = (unsigned short)n, .filter = program};

    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fprog) != 0) {
        perror("outer: seccomp");
        return 2;
    }
    execvp(argv[i + 1], argv + i + 1);
    fprintf(stderr, "outer: %s: %s\n", argv[i + 1], strerror(errno));
    return 127;
}
