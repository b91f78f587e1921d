/*
 * ctun: a deliberately simple userspace IPIP (4in4, IP protocol 4) and 6in4 (IP protocol 41) tunnel, the
 * reference that the benchmark measures kiwitun against in the same run and that the interop tests run opposite
 * kiwitun. It is not part of the daemon and is never installed.
 *
 * It is built the straightforward way on purpose: one TUN device (IFF_TUN | IFF_NO_PI, no vnet header, no
 * offloads), one raw IPv4 socket per enabled protocol with the kernel's default buffers, one thread per file
 * descriptor, and one blocking read or sendto per packet. The kernel builds the outer IPv4 header (no IP_HDRINCL).
 * Packets go to the -r address only.
 *
 *   ctun [-4] [-6] -r REMOTE_IPV4 [-l LOCAL_IPV4] [-i IFNAME] [-t TTL] [-d]
 *
 * -d is accepted for the C original's command line and ignored: ctun always stays in the foreground. Once the
 * device is up and every thread runs it prints "ctun: up IFNAME" on stdout; SIGTERM and SIGINT end it with exit
 * code 0 (closing the TUN descriptor removes the device). Bad arguments or a failed set-up call: a message on
 * stderr and exit code 1.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define TUNNEL_MTU 1480 /* 1500 on the underlay minus the 20-byte outer IPv4 header */
#define BUFFER_SIZE 65536 /* an IPv4 datagram's maximum: the kernel may hand a raw socket reassembled packets */

struct tunnel {
  int tun;
  int raw4; /* protocol 4 socket, or -1 when 4in4 is off */
  int raw6; /* protocol 41 socket, or -1 when 6in4 is off */
  struct sockaddr_in remote;
};

struct receiver {
  const struct tunnel *tunnel;
  int fd;
  int inner_version; /* what the socket's protocol carries: 4 for protocol 4, 6 for protocol 41 */
};

static _Noreturn void fail(const char *format, ...) {
  va_list args;
  va_start(args, format);
  fputs("ctun: ", stderr);
  vfprintf(stderr, format, args);
  fputc('\n', stderr);
  va_end(args);
  exit(1);
}

static _Noreturn void fail_errno(const char *what) { fail("%s: %s", what, strerror(errno)); }

static _Noreturn void usage_error(const char *problem) {
  fail("%s\nusage: ctun [-4] [-6] -r REMOTE_IPV4 [-l LOCAL_IPV4] [-i IFNAME] [-t TTL] [-d]", problem);
}

static int open_tun(char ifname[IFNAMSIZ]) {
  int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
  if (fd < 0) fail_errno("open /dev/net/tun");
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
  memcpy(ifr.ifr_name, ifname, IFNAMSIZ); /* ifname is a NUL-padded IFNAMSIZ array */
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) fail_errno("ioctl TUNSETIFF");
  /* the kernel fills in the name it chose when none was asked for */
  memcpy(ifname, ifr.ifr_name, IFNAMSIZ);
  ifname[IFNAMSIZ - 1] = '\0';
  return fd;
}

static void bring_up(const char ifname[IFNAMSIZ]) {
  int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (sock < 0) fail_errno("socket AF_INET SOCK_DGRAM");
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  memcpy(ifr.ifr_name, ifname, IFNAMSIZ); /* ifname is a NUL-padded IFNAMSIZ array */
  ifr.ifr_mtu = TUNNEL_MTU;
  if (ioctl(sock, SIOCSIFMTU, &ifr) < 0) fail_errno("ioctl SIOCSIFMTU");
  if (ioctl(sock, SIOCGIFFLAGS, &ifr) < 0) fail_errno("ioctl SIOCGIFFLAGS");
  ifr.ifr_flags |= IFF_UP;
  if (ioctl(sock, SIOCSIFFLAGS, &ifr) < 0) fail_errno("ioctl SIOCSIFFLAGS");
  close(sock);
}

static int open_raw(int protocol, const struct in_addr *local, int ttl) {
  int fd = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, protocol);
  if (fd < 0) fail("socket AF_INET SOCK_RAW %d: %s", protocol, strerror(errno));
  if (local != NULL) {
    /* a raw socket bound to an address sends from it and receives only packets addressed to it */
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr = *local;
    if (bind(fd, (const struct sockaddr *)&addr, sizeof addr) < 0) fail_errno("bind to the local address");
  }
  if (ttl > 0 && setsockopt(fd, IPPROTO_IP, IP_TTL, &ttl, sizeof ttl) < 0) fail_errno("setsockopt IP_TTL");
  return fd;
}

/* TUN -> network: one read, one sendto; the socket picks the outer protocol, the kernel writes the outer header. */
static void *encapsulate(void *arg) {
  const struct tunnel *t = arg;
  uint8_t *packet = malloc(BUFFER_SIZE);
  if (packet == NULL) fail("out of memory");
  for (;;) {
    ssize_t n = read(t->tun, packet, BUFFER_SIZE);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail_errno("read from the TUN device");
    }
    if (n < 1) continue;
    int version = packet[0] >> 4;
    /* a fresh device also carries the kernel's IPv6 solicitations: only what an enabled mode carries goes out */
    int fd = version == 4 ? t->raw4 : version == 6 ? t->raw6 : -1;
    if (fd < 0) continue;
    if (sendto(fd, packet, (size_t)n, 0, (const struct sockaddr *)&t->remote, sizeof t->remote) < 0) {
      /* no route, a full queue, too big: this packet is lost, as it would be on the wire */
    }
  }
  return NULL;
}

/* network -> TUN: the raw socket hands over the whole IPv4 packet, outer header included. */
static void *decapsulate(void *arg) {
  const struct receiver *r = arg;
  uint8_t *packet = malloc(BUFFER_SIZE);
  if (packet == NULL) fail("out of memory");
  for (;;) {
    struct sockaddr_in from;
    socklen_t fromlen = sizeof from;
    ssize_t n = recvfrom(r->fd, packet, BUFFER_SIZE, 0, (struct sockaddr *)&from, &fromlen);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail_errno("recvfrom on the raw socket");
    }
    if (n < 20 || packet[0] >> 4 != 4) continue;
    /* a fixed remote, as in the C original: packets of this protocol from anyone else are dropped silently */
    if (from.sin_addr.s_addr != r->tunnel->remote.sin_addr.s_addr) continue;
    size_t header = (size_t)(packet[0] & 0x0f) * 4;
    size_t total = ((size_t)packet[2] << 8) | packet[3];
    if (header < 20 || total < header || total > (size_t)n) continue;
    if (total == header || packet[header] >> 4 != r->inner_version) continue;
    if (write(r->tunnel->tun, packet + header, total - header) < 0) {
      /* the kernel refused the inner packet (malformed, or the device is going away): it is lost */
    }
  }
  return NULL;
}

static void start_thread(void *(*body)(void *), void *arg) {
  pthread_t thread;
  int err = pthread_create(&thread, NULL, body, arg);
  if (err != 0) fail("pthread_create: %s", strerror(err));
  pthread_detach(thread);
}

int main(int argc, char **argv) {
  int ipip = 0, sit = 0, ttl = 0, have_local = 0;
  const char *remote_text = NULL;
  struct in_addr local;
  char ifname[IFNAMSIZ] = "";
  int opt;
  opterr = 0;
  while ((opt = getopt(argc, argv, "46r:l:i:t:d")) != -1) {
    switch (opt) {
      case '4': ipip = 1; break;
      case '6': sit = 1; break;
      case 'd': break; /* always in the foreground */
      case 'r': remote_text = optarg; break;
      case 'l':
        if (inet_pton(AF_INET, optarg, &local) != 1) fail("-l: not an IPv4 address: %s", optarg);
        have_local = 1;
        break;
      case 'i':
        if (strlen(optarg) == 0 || strlen(optarg) >= IFNAMSIZ) fail("-i: interface name must be 1 to 15 bytes");
        strcpy(ifname, optarg);
        break;
      case 't': {
        char *end;
        long value = strtol(optarg, &end, 10);
        if (*optarg == '\0' || *end != '\0' || value < 1 || value > 255) fail("-t: TTL must be 1 to 255: %s", optarg);
        ttl = (int)value;
        break;
      }
      default: {
        char problem[64];
        snprintf(problem, sizeof problem, "unknown option or missing value: -%c", optopt);
        usage_error(problem);
      }
    }
  }
  if (optind < argc) usage_error("unexpected argument");
  if (!ipip && !sit) usage_error("at least one of -4 and -6 is required");
  if (remote_text == NULL) usage_error("-r REMOTE_IPV4 is required");

  struct tunnel tunnel = { .tun = -1, .raw4 = -1, .raw6 = -1 };
  tunnel.remote.sin_family = AF_INET;
  if (inet_pton(AF_INET, remote_text, &tunnel.remote.sin_addr) != 1) {
    fail("-r: not an IPv4 address: %s", remote_text);
  }

  /* SIGTERM and SIGINT are taken by sigwait in the main thread alone: every thread inherits this mask */
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  int err = pthread_sigmask(SIG_BLOCK, &stop, NULL);
  if (err != 0) fail("pthread_sigmask: %s", strerror(err));

  const struct in_addr *bound = have_local ? &local : NULL;
  if (ipip) tunnel.raw4 = open_raw(IPPROTO_IPIP, bound, ttl);
  if (sit) tunnel.raw6 = open_raw(IPPROTO_IPV6, bound, ttl);
  tunnel.tun = open_tun(ifname);
  bring_up(ifname);

  static struct receiver receivers[2];
  receivers[0] = (struct receiver){ .tunnel = &tunnel, .fd = tunnel.raw4, .inner_version = 4 };
  receivers[1] = (struct receiver){ .tunnel = &tunnel, .fd = tunnel.raw6, .inner_version = 6 };
  start_thread(encapsulate, &tunnel);
  for (int i = 0; i < 2; i++) {
    if (receivers[i].fd >= 0) start_thread(decapsulate, &receivers[i]);
  }

  printf("ctun: up %s\n", ifname);
  fflush(stdout);

  int sig = 0;
  while (sigwait(&stop, &sig) != 0) {
  }
  /* the kernel closes every descriptor, which removes the non-persistent TUN device */
  _exit(0);
}
