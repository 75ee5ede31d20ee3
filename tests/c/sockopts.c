/* sockopts: setsockopt over and over, as a server sets its sockets up.
 *
 *   sockopts ITERATIONS
 *
 * On one TCP socket, ITERATIONS times: TCP_NODELAY set to 0 or 1 in turn (checked with
 * getsockopt), and IP_OPTIONS (which sockbox refuses with EPERM). 32-bit builds make
 * the TCP_NODELAY one through socketcall(SYS_SETSOCKOPT) by hand, with known values in
 * the registers the call does not take, and check that they come back as they were (i386
 * code relies on it: ebx is the GOT pointer of PIC code); glibc makes the others
 * through socketcall too. Prints "done N nodelay K options E registers R": K
 * TCP_NODELAY calls that worked and read back, E IP_OPTIONS calls refused with EPERM, R
 * calls that kept the registers.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

/* setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on); whether the registers were
 * kept (1 where it is a plain call). */
static long nodelay(int fd, int on, int *kept)
{
#if defined(__i386__)
    unsigned long words[5] = {fd, IPPROTO_TCP, TCP_NODELAY, (unsigned long)&on, sizeof on};
    unsigned long ebx = 14 /* SYS_SETSOCKOPT */, ecx = (unsigned long)words;
    unsigned long edx = 0x11111111, esi = 0x22222222, edi = 0x33333333;
    long result = 102; /* __NR_socketcall */
    __asm__ volatile("xchg %%ebx, %[b]\n\tint $0x80\n\txchg %%ebx, %[b]"
                     : "+a"(result), [b] "+m"(ebx), "+c"(ecx), "+d"(edx), "+S"(esi), "+D"(edi)
                     :
                     : "memory");
    *kept = ebx == 14 && ecx == (unsigned long)words && edx == 0x11111111 && esi == 0x22222222 &&
            edi == 0x33333333;
    if (result < 0) {
        errno = -result;
        return -1;
    }
    return result;
#else
    *kept = 1;
    return setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
#endif
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: sockopts ITERATIONS\n");
        return 2;
    }
    int iterations = atoi(argv[1]);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        perror("socket");
        return 1;
    }
    int worked = 0, refused = 0, kept_count = 0;
    for (int i = 0; i < iterations; i++) {
        int kept, value = -1;
        socklen_t length = sizeof value;
        if (nodelay(fd, i & 1, &kept) == 0 &&
            getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &value, &length) == 0 && !value == !(i & 1))
            worked++;
        kept_count += kept;
        unsigned char options[4] = {1, 1, 1, 0}; /* NOPs and the end of the list */
        if (setsockopt(fd, IPPROTO_IP, IP_OPTIONS, options, sizeof options) < 0 && errno == EPERM)
            refused++;
    }
    printf("done %d nodelay %d options %d registers %d\n", iterations, worked, refused, kept_count);
    return 0;
}
