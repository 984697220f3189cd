#!/usr/bin/perl
# Docker HEALTHCHECK probe: asks /health/ready over the unix socket the app listens on (or TCP
# when LISTEN_SOCKET is unset). Healthy means this container answered: a socket path can name
# another live server while this one waits to claim it, so the instance header must name us.
# Perl, not Node: the slim image has no curl, and Docker runs this every 250 ms while a release
# boots; perl-base (Essential in Debian) starts in about 10 ms of CPU, a Node probe about 65 ms,
# taken from the booting app on a small host.
use strict;
use warnings;
use IO::Socket::INET;
use IO::Socket::UNIX;

$SIG{ALRM} = sub { exit 1 };
alarm 2;    # Docker's timeout is 3 s: answer before it does.

my $path = $ENV{LISTEN_SOCKET} // '';
my $sock = $path ne ''
  ? IO::Socket::UNIX->new(Type => SOCK_STREAM(), Peer => $path)
  : IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $ENV{PORT} || 3000, Proto => 'tcp');
exit 1 unless $sock;
print {$sock} "GET /health/ready HTTP/1.0\r\nHost: localhost\r\n\r\n" or exit 1;

my $head = '';
while (index($head, "\r\n\r\n") < 0) {
  sysread($sock, $head, 4096, length $head) or exit 1;
}
# What Node's os.hostname() returns, and what the app puts in the header.
open my $fh, '<', '/proc/sys/kernel/hostname' or exit 1;
chomp(my $me = <$fh> // '');
exit 1 unless $me ne '' && $head =~ m{\AHTTP/1\.[01] 200 };
exit(($head =~ m{\r\nx-slipway-instance:[ \t]*\Q$me\E[ \t]*\r\n}i) ? 0 : 1);
