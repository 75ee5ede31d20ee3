/* cpu_file N: N rounds of hashing a 64 KiB buffer, writing it to a temporary file and
 * reading it back (no fsync). No socket call at all: this is the work a sandbox should
 * leave alone, so any slowdown here is the filter's or the tracer's fixed cost. */
#include "common.h"
#include <stdint.h>
#include <unistd.h>

#define SIZE (64 * 1024)

static uint64_t fnv1a(const unsigned char *buf, size_t len, uint64_t h)
{
    for (size_t i = 0; i < len; i++)
        h = (h ^ buf[i]) * 0x100000001b3ULL;
    return h;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: cpu_file N\n");
        return 2;
    }
    long n = atol(argv[1]);
    char path[] = "/tmp/sockbox-bench-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        die("mkstemp");
    unlink(path);
    static unsigned char buf[SIZE];
    for (size_t i = 0; i < SIZE; i++)
        buf[i] = (unsigned char)i;

    uint64_t h = 0xcbf29ce484222325ULL;
    double start = now_us();
    for (long i = 0; i < n; i++) {
        h = fnv1a(buf, SIZE, h);
        buf[i % SIZE] = (unsigned char)h;  /* so the hash is not hoisted out */
        if (pwrite(fd, buf, SIZE, 0) != SIZE || pread(fd, buf, SIZE, 0) != SIZE)
            die("pwrite/pread");
    }
    report(now_us() - start, n);
    printf("hash %016llx\n", (unsigned long long)h);
    close(fd);
    return 0;
}
