/* fuzz: thousands of socket calls with random, often absurd arguments.
 *
 *   fuzz SEED COUNT
 *
 * Prints one line per call: "INDEX CALL RESULT" where RESULT is a count or an errno
 * name, so that a run natively and a run in the sandbox can be compared line by line.
 * Every socket it makes is non-blocking and every receive is MSG_DONTWAIT, so nothing
 * waits; run it in a network namespace of its own, since its addresses are random.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

static uint64_t state;
static uint64_t next(void) {  /* xorshift64*: the same sequence on every run of a seed */
    state ^= state >> 12; state ^= state << 25; state ^= state >> 27;
    return state * 0x2545F4914F6CDD1DULL;
}
static long pick(const long *choices, int n) { return choices[next() % n]; }
#define PICK(array) pick(array, (int)(sizeof(array) / sizeof(array[0])))
/* Make a syscall, keeping its arguments for the verbose line. */
#define CALL(nr, ...) ({ long args_[6] = {__VA_ARGS__}; memcpy(a, args_, sizeof args_); \
                         call(nr, a); })

#define LISTENING 4242  /* where tests/reach.py listens, on 127.0.0.1 and ::1 */
static unsigned char *arena;  /* random bytes, with an unmapped page after it */
static unsigned char *pristine;  /* the arena as it was made, put back after every call */
#define ARENA 65536

static long pointer(void);

#ifdef __i386__
/* The socketcall(2) number of each direct socket syscall: i386 programs reach the same
 * calls through either entry, and a sandbox must see them the same way. */
static int multiplexed(long nr) {
    static const long direct[] = {SYS_socket, SYS_bind, SYS_connect, SYS_listen, 0,
        SYS_getsockname, SYS_getpeername, SYS_socketpair, 0, 0, SYS_sendto, SYS_recvfrom,
        SYS_shutdown, SYS_setsockopt, SYS_getsockopt, SYS_sendmsg, SYS_recvmsg, SYS_accept4,
        SYS_recvmmsg, SYS_sendmmsg};
    for (int i = 0; i < (int)(sizeof direct / sizeof direct[0]); i++)
        if (direct[i] == nr) return i + 1;
    return 0;
}
#endif

static long call(long nr, const long *a) {
#ifdef __i386__
    int sub = multiplexed(nr);
    if (sub && next() % 2) {  /* half through socketcall; now and then its array is wild */
        static long array[6];
        memcpy(array, a, sizeof array);
        return syscall(SYS_socketcall, sub, next() % 16 ? (long)array : pointer());
    }
#endif
    return syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
}

static long made[8];  /* descriptors the last calls returned, for the next ones to use */
static int made_count;
static void keep(long fd) { made[made_count++ % 8] = fd; }

static long fd_arg(void) {
    static const long fds[] = {-1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 1000, 0x7fffffff};
    if (made_count && next() % 2) return made[next() % (made_count < 8 ? made_count : 8)];
    return PICK(fds);
}
static long pointer(void) {
    switch (next() % 6) {
    case 0: return 0;
    case 1: return 16;                                     /* unmapped */
    case 2: return (long)(arena + ARENA - 4);              /* runs into the unmapped page */
    default: return (long)(arena + next() % (ARENA - 512)); /* random bytes */
    }
}
static long length(void) {
    static const long lengths[] = {0, 1, 2, 3, 8, 12, 15, 16, 24, 27, 28, 100, 110, 111, 112,
                                   127, 128, 129, 4096, -1, 0x7fffffff};
    return PICK(lengths);
}
static long sockaddr(void) {
    /* Random bytes, but often a plausible family in front, so decoders go deep. */
    unsigned char *p = arena + next() % (ARENA - 512);
    static const long families[] = {0, 1, 2, 2, 2, 10, 10, 16, 17, 4242};
    uint16_t family = (uint16_t)PICK(families);
    memcpy(p, &family, 2);
    if (family == 2 && next() % 4) {            /* 127.0.0.1, often at the listeners' port */
        p[4] = 127; p[5] = 0; p[6] = 0; p[7] = 1;
        if (next() % 4) { p[2] = LISTENING >> 8; p[3] = LISTENING & 0xff; }
    }
    if (family == 10 && next() % 4) {           /* ::1 or ::ffff:127.0.0.1, often there too */
        memset(p + 8, 0, 16);
        if (next() % 2) p[23] = 1;
        else { p[18] = p[19] = 0xff; p[20] = 127; p[23] = 1; }
        if (next() % 4) { p[2] = LISTENING >> 8; p[3] = LISTENING & 0xff; }
    }
    return next() % 8 ? (long)p : pointer();
}
/* The last connect or sendto, to be made again exactly (as a program retries; the
 * sandbox serves a repeat in C): its arguments, and its address's bytes, which the
 * arena loses after every call. */
static struct { const char *name; long nr; long a[6]; unsigned char *at; unsigned char bytes[128]; } last;
static void remember(const char *name, long nr, const long *a, int address_arg) {
    last.name = name, last.nr = nr;
    memcpy(last.a, a, sizeof last.a);
    unsigned char *at = (unsigned char *)a[address_arg];
    last.at = at >= arena && at + sizeof last.bytes <= arena + ARENA ? at : NULL;
    if (last.at) memcpy(last.bytes, at, sizeof last.bytes);
}

static long message(int vlen) {
    /* A msghdr (or an array of mmsghdr) whose fields point at random places. */
    long *m = (long *)(arena + 8 * (next() % ((ARENA - 4096) / 8)));
    for (int i = 0; i < vlen; i++) {
        long *h = m + i * 8;
        h[0] = next() % 3 ? sockaddr() : 0;      /* msg_name */
        h[1] = length();                          /* msg_namelen (an int, and padding) */
        h[2] = pointer();                         /* msg_iov */
        h[3] = next() % 4;                        /* msg_iovlen */
        h[4] = next() % 3 ? pointer() : 0;        /* msg_control */
        h[5] = next() % 3 ? length() : 0;         /* msg_controllen */
        h[6] = 0;
    }
    return next() % 8 ? (long)m : pointer();
}

/* Verbose: the first message header, and what it points to where readable. */
static int readable(const void *p, size_t n) {
    /* A pipe, unlike /dev/null, copies what it is given: EFAULT where p is not mapped. */
    static int ends[2] = {-1, -1};
    static char sink[65536];
    if (ends[0] < 0) {  /* kept out of reach of the descriptors the calls use */
        if (pipe2(ends, O_NONBLOCK) != 0) return 0;
        ends[0] = dup3(ends[0], 700, O_CLOEXEC);
        ends[1] = dup3(ends[1], 701, O_CLOEXEC);
    }
    if (n > sizeof sink) n = sizeof sink;
    ssize_t written = n ? write(ends[1], p, n) : 0;
    if (written > 0) read(ends[0], sink, (size_t)written);
    return written == (ssize_t)n;
}
static void hex(const char *label, const void *p, size_t n) {
    printf(" %s=", label);
    if (!readable(p, n)) { printf("unreadable"); return; }
    for (size_t i = 0; i < n; i++) printf("%02x", ((const unsigned char *)p)[i]);
}
static void show_message(const long *h) {
    if (!readable(h, 56)) { printf(" msghdr=unreadable"); return; }
    printf(" name=%lx namelen=%d iov=%lx iovlen=%lu control=%lx controllen=%lu",
           h[0], (int)h[1], h[2], (unsigned long)h[3], h[4], (unsigned long)h[5]);
    int namelen = (int)h[1];
    if (h[0] && namelen > 0) hex("namebytes", (void *)h[0], namelen > 128 ? 128 : namelen);
    for (unsigned long i = 0; i < (unsigned long)h[3] && i < 4; i++) {
        const long *v = (const long *)h[2] + 2 * i;
        if (readable(v, 16)) printf(" iov%lu=(%lx,%lx:%s)", i, v[0], v[1], readable((void *)v[0], v[1] < 65536 ? v[1] : 0) ? "ok" : "fault");
        else printf(" iov%lu=unreadable", i);
    }
    if (h[4] && h[5]) hex("controlbytes", (void *)h[4], (unsigned long)h[5] > 64 ? 64 : (size_t)h[5]);
}

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: fuzz SEED COUNT\n"); return 98; }
    state = strtoull(argv[1], NULL, 10) * 2654435761ULL + 1;
    int count = atoi(argv[2]);
    arena = mmap(NULL, ARENA + 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(arena + ARENA, 4096);
    for (int i = 0; i < ARENA; i++) arena[i] = (unsigned char)next();
    pristine = malloc(ARENA);
    memcpy(pristine, arena, ARENA);

    static const long families[] = {0, 1, 2, 10, 16, 17, 38, 4242, -1};
    static const long inet[] = {2, 10};
    static const long types[] = {1, 2, 3, 5, 10, 99, -1};
    static const long protocols[] = {0, 1, 6, 17, 58, 255, 0x10000, -1};
    static const long levels[] = {0, 1, 6, 17, 41, 255, 4242};
    static const long options[] = {1, 2, 3, 4, 5, 7, 8, 13, 20, 21, 25, 26, 57, 1000};
    static const long flags[] = {0, 0x40, 0x4000, 0x20000000, 0x40 | 0x4000, -1};
    const long nonblock = 04000;

    int verbose = getenv("FUZZ_VERBOSE") != NULL;  /* to explain one line of a difference */
    for (int i = 0; i < count; i++) {
        long r;
        const char *name;
        long f = fd_arg();
        long a[6] = {0};
        switch (next() % 19) {
        case 0: name = "socket";
            if (next() % 3)
                r = CALL(SYS_socket, PICK(families), PICK(types) | nonblock, PICK(protocols));
            else  /* one that works, to go further with */
                r = CALL(SYS_socket, PICK(inet), (long)(next() % 2 + 1) | nonblock, 0L);
            if (r >= 0) keep(r);
            break;
        case 1: name = "socketpair";
            r = CALL(SYS_socketpair, PICK(families), PICK(types) | nonblock, PICK(protocols), pointer()); break;
        case 2: name = "bind";
            r = CALL(SYS_bind, f, sockaddr(), length()); break;
        case 3: name = "connect";
            r = CALL(SYS_connect, f, sockaddr(), length());
            remember(name, SYS_connect, a, 1); break;
        case 4: name = "listen";
            r = CALL(SYS_listen, f, (long)(next() % 8)); break;
        case 5: name = "accept4";
            r = CALL(SYS_accept4, f, pointer(), pointer(), PICK(flags) & 04000);
            if (r >= 0) keep(r);
            break;
        case 6: name = "getsockname";
            r = CALL(SYS_getsockname, f, pointer(), pointer()); break;
        case 7: name = "getpeername";
            r = CALL(SYS_getpeername, f, pointer(), pointer()); break;
        case 8: name = "sendto";
            r = CALL(SYS_sendto, f, pointer(), length() & 0xfff, PICK(flags) | 0x40 | 0x4000,
                        next() % 2 ? sockaddr() : 0, length());
            remember(name, SYS_sendto, a, 4); break;
        case 9: name = "recvfrom";
            r = CALL(SYS_recvfrom, f, pointer(), length() & 0xfff, 0x40, pointer(), pointer()); break;
        case 10: name = "shutdown";
            r = CALL(SYS_shutdown, f, (long)(next() % 4)); break;
        case 11: name = "setsockopt";
            a[1] = PICK(levels), a[2] = PICK(options);
            if ((a[1] == 0 && a[2] == 4) || (a[1] == 41 && (a[2] == 5 || a[2] == 57)))
                a[2] = 1;  /* the routing options sockbox always refuses: test_attacks.py */
            r = CALL(SYS_setsockopt, f, a[1], a[2], pointer(), length()); break;
        case 12: name = "getsockopt";
            r = CALL(SYS_getsockopt, f, PICK(levels), PICK(options), pointer(), pointer()); break;
        case 13: name = "sendmsg";
            r = CALL(SYS_sendmsg, f, message(1), PICK(flags) | 0x40 | 0x4000); break;
        case 14: name = "recvmsg";
            r = CALL(SYS_recvmsg, f, message(1), 0x40); break;
        case 15: name = "sendmmsg";
            r = CALL(SYS_sendmmsg, f, message(3), (long)(next() % 4), PICK(flags) | 0x40 | 0x4000); break;
        case 16: name = "recvmmsg";
            r = CALL(SYS_recvmmsg, f, message(3), (long)(next() % 4), 0x40, 0L); break;
        case 17: name = last.name ? last.name : "again";
            if (last.at) memcpy(last.at, last.bytes, sizeof last.bytes);
            r = last.name ? CALL(last.nr, last.a[0], last.a[1], last.a[2], last.a[3], last.a[4], last.a[5]) : -1;
            if (!last.name) errno = 0;
            break;
        default: name = "close";
            r = f > 2 ? close((int)f) : -1; if (f <= 2) errno = 0; break;
        }
        if (r < 0)
            printf("%d %s %s", i, name, errno ? strerrorname_np(errno) : "skipped");
        else
            printf("%d %s %ld", i, name, r);
        /* What sendmmsg wrote: each sent message's length (unless socketcall's array
         * was wild, and the messages were elsewhere). */
        if (!strcmp(name, "sendmmsg") && r > 0 && readable((void *)a[1], r * sizeof(struct mmsghdr)))
            for (long m = 0; m < r; m++) printf(" %u", ((struct mmsghdr *)a[1])[m].msg_len);
        /* What the kernel wrote (a port it picked, a socket's cookie) differs from run to
         * run: no later call may depend on it. */
        memcpy(arena, pristine, ARENA);
        if (verbose) {
            printf("  (%lx, %lx, %lx, %lx, %lx, %lx)", a[0], a[1], a[2], a[3], a[4], a[5]);
            if (!strcmp(name, "sendmsg") || !strcmp(name, "sendmmsg"))
                show_message((const long *)a[1]);
        }
        printf("\n");
    }
    return 0;
}
