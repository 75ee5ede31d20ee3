/* raw: traffic whose destination is not the one its sockaddr names.
 *
 *   raw MODE ALLOWED DENIED
 *
 * Each mode names ALLOWED (a port the profile allows on loopback) in its socket calls
 * and tries to deliver "raw-escape" as a UDP datagram to port DENIED of 127.0.0.1 (or
 * ::1) instead. It prints "OK" once the datagram was handed to the kernel, or the step
 * and errno that failed ("connect ERR EACCES").
 *   connect      a raw IPv4 socket (IPPROTO_UDP) connected to 127.0.0.1:ALLOWED sends a
 *                UDP header of its own with send()
 *   sendto       the same with sendto(127.0.0.1:ALLOWED)
 *   hdrincl      an IPPROTO_RAW socket (the IP header is the program's) sends to
 *                127.0.0.2:ALLOWED a packet whose header says 127.0.0.1
 *   sendto6      a raw IPv6 socket (IPPROTO_UDP) sends to [::1]:ALLOWED a UDP header of
 *                its own (ALLOWED must then be 17: IPv6 raw reads the port as the protocol)
 *   packet       socket(AF_INET, SOCK_PACKET): the obsolete spelling of a packet socket
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/udp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char payload[] = "raw-escape";

static int fail(const char *step)
{
    printf("%s ERR %s\n", step, strerrorname_np(errno) ? strerrorname_np(errno) : "?");
    return 1;
}

/* A UDP header and the payload; the checksum left 0 (none, for IPv4). */
static size_t udp_datagram(unsigned char *out, int port)
{
    struct udphdr header = {0};
    header.source = htons(40000);
    header.dest = htons(port);
    header.len = htons(sizeof header + sizeof payload);
    memcpy(out, &header, sizeof header);
    memcpy(out + sizeof header, payload, sizeof payload);
    return sizeof header + sizeof payload;
}

/* An IPv6 UDP checksum over the pseudo-header (mandatory for IPv6). */
static void checksum6(unsigned char *datagram, size_t length, const struct in6_addr *from,
                      const struct in6_addr *to)
{
    unsigned long sum = 0;
    const unsigned char *parts[2] = {(const unsigned char *)from, (const unsigned char *)to};
    for (int p = 0; p < 2; p++)
        for (int i = 0; i < 16; i += 2)
            sum += parts[p][i] << 8 | parts[p][i + 1];
    sum += length + IPPROTO_UDP;
    for (size_t i = 0; i < length; i += 2)
        sum += datagram[i] << 8 | (i + 1 < length ? datagram[i + 1] : 0);
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    unsigned short folded = ~sum ? ~sum : 0xffff;
    datagram[6] = folded >> 8, datagram[7] = folded & 0xff;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: raw connect|sendto|hdrincl|sendto6|packet ALLOWED DENIED\n");
        return 2;
    }
    const char *mode = argv[1];
    int allowed = atoi(argv[2]), denied = atoi(argv[3]);
    unsigned char packet[256];
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(allowed)};
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    if (!strcmp(mode, "packet")) {
        int fd = socket(AF_INET, SOCK_PACKET, htons(0x0003)); /* ETH_P_ALL */
        if (fd < 0)
            return fail("socket");
        printf("OK\n");
        return 0;
    }
    if (!strcmp(mode, "sendto6")) {
        int fd = socket(AF_INET6, SOCK_RAW, IPPROTO_UDP);
        if (fd < 0)
            return fail("socket");
        struct sockaddr_in6 to6 = {.sin6_family = AF_INET6, .sin6_port = htons(allowed)};
        to6.sin6_addr = in6addr_loopback;
        size_t length = udp_datagram(packet, denied);
        checksum6(packet, length, &in6addr_loopback, &in6addr_loopback);
        if (sendto(fd, packet, length, 0, (struct sockaddr *)&to6, sizeof to6) < 0)
            return fail("sendto");
        printf("OK\n");
        return 0;
    }
    if (!strcmp(mode, "hdrincl")) {
        int fd = socket(AF_INET, SOCK_RAW, IPPROTO_RAW);
        if (fd < 0)
            return fail("socket");
        struct iphdr ip = {0};
        ip.version = 4, ip.ihl = 5, ip.ttl = 64, ip.protocol = IPPROTO_UDP;
        ip.saddr = htonl(INADDR_LOOPBACK), ip.daddr = htonl(INADDR_LOOPBACK);
        size_t length = udp_datagram(packet + sizeof ip, denied);
        ip.tot_len = htons(sizeof ip + length);
        memcpy(packet, &ip, sizeof ip);
        to.sin_addr.s_addr = htonl(0x7f000002); /* 127.0.0.2: where the sockaddr says */
        if (sendto(fd, packet, sizeof ip + length, 0, (struct sockaddr *)&to, sizeof to) < 0)
            return fail("sendto");
        printf("OK\n");
        return 0;
    }
    int fd = socket(AF_INET, SOCK_RAW, IPPROTO_UDP);
    if (fd < 0)
        return fail("socket");
    size_t length = udp_datagram(packet, denied);
    if (!strcmp(mode, "connect")) {
        if (connect(fd, (struct sockaddr *)&to, sizeof to) < 0)
            return fail("connect");
        if (send(fd, packet, length, 0) < 0)
            return fail("send");
    } else if (sendto(fd, packet, length, 0, (struct sockaddr *)&to, sizeof to) < 0) {
        return fail("sendto");
    }
    printf("OK\n");
    return 0;
}
