/* tty: push a command line into the controlling terminal, as if the user typed it, so
 * that the shell reading that terminal runs it after the program (and sockbox) ends.
 *
 *   tty ROAD TEXT
 *
 * ROAD: `libc` (ioctl(TIOCSTI) through the C library: the i386 ioctl in a -m32 build),
 * `int80` (the i386 ioctl through int $0x80 from a 64-bit build), `linux` (TIOCLINUX
 * with the paste subcode, which a console would answer with its selection). Each
 * character pushed prints nothing; the first failure prints "ERR <ERRNO>" and stops;
 * success prints "OK".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

static long push(const char *road, int fd, char *byte)
{
    if (!strcmp(road, "libc"))
        return ioctl(fd, TIOCSTI, byte);
#if defined(__x86_64__)
    if (!strcmp(road, "int80")) {
        long result;
        __asm__ volatile("int $0x80" : "=a"(result) : "a"(54), "b"(fd), "c"(TIOCSTI), "d"(byte)
                         : "memory");
        if (result < 0) {
            errno = -result;
            return -1;
        }
        return result;
    }
#endif
    errno = EINVAL;
    return -1;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: tty libc|int80|linux TEXT\n");
        return 2;
    }
    int fd = open("/dev/tty", O_RDWR);
    if (fd < 0) {
        printf("ERR %s\n", strerrorname_np(errno));
        return 1;
    }
    /* below 4 GiB, where an int $0x80 call can point */
    char *buffer = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT,
                        -1, 0);
    if (buffer == MAP_FAILED)
        return 1;
    if (!strcmp(argv[1], "linux")) {
        buffer[0] = 3; /* TIOCL_PASTESEL */
        if (ioctl(fd, TIOCLINUX, buffer) < 0) {
            printf("ERR %s\n", strerrorname_np(errno));
            return 1;
        }
        printf("OK\n");
        return 0;
    }
    for (const char *c = argv[2]; *c; c++) {
        buffer[0] = *c;
        if (push(argv[1], fd, buffer) < 0) {
            printf("ERR %s\n", strerrorname_np(errno));
            return 1;
        }
    }
    printf("OK\n");
    return 0;
}
