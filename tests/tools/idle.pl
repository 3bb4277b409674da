#!/usr/bin/perl
# idle.pl: many idle connections from one source address, for tests/94-caps.bats (issue 14
# item 5: untrusted peers hold as many connections as they may; trusted publishers still get
# through).
#
#   idle.pl --port P [--addr A] --count N [--settle S] [--ready FILE] [--hold FILE]
#           [--go FILE] [--timeout S]
#
# Opens N connections to 127.0.0.1:P from source address A, one after the other, and sends
# nothing on them. Once all are open (with --go: FILE.opened written, then FILE waited for:
# the caller says when the server has taken them all from its listening queue) and the server
# has had --settle seconds (default 1) to answer (a process per connection starts slowly), it
# counts
# them: "held" (open, nothing received), "refused" (a 503 came, then the end), "other" (any
# other answer, or the connection ended or failed); writes those figures to FILE (--ready), and
# keeps every held connection open until the file --hold exists or S seconds pass, then counts
# again and prints name=value lines: opened, held, refused, other, held_at_end, first_refusal
# (the first line of one refusal). Exit 0 when it measured.
use strict;
use warnings;
use Getopt::Long;
use IO::Socket::INET;
use Socket qw(inet_aton pack_sockaddr_in);
use Time::HiRes qw(time sleep);

my ($port, $addr, $count, $settle, $ready, $hold, $go, $timeout) =
    (0, '127.0.0.2', 1, 1, '', '', '', 120);
GetOptions('port=i' => \$port, 'addr=s' => \$addr, 'count=i' => \$count, 'settle=f' => \$settle,
    'ready=s' => \$ready, 'hold=s' => \$hold, 'go=s' => \$go, 'timeout=f' => \$timeout)
    or exit 2;

my @sock;
my $failed = 0;
my $server = pack_sockaddr_in($port, inet_aton('127.0.0.1'));
for my $i (1 .. $count) {
    my $s = IO::Socket::INET->new(LocalAddr => $addr, Proto => 'tcp', Blocking => 1);
    if ($s && $s->connect($server)) {
        $s->blocking(0);
        push @sock, $s;
    } else {
        $failed++;
    }
}
if ($go ne '') {
    open my $f, '>', "$go.opened" or die "$go.opened: $!";
    close $f;
    my $until = time + $timeout;
    sleep 0.05 while !-e $go && time < $until;
}
sleep $settle;

# What each connection holds now: 'held', 'refused' or 'other'.
my $first_refusal = '';
sub state_of {
    my ($s) = @_;
    my $buf = '';
    my $n = sysread($s, $buf, 4096);
    return 'held' if !defined $n && ($!{EAGAIN} || $!{EWOULDBLOCK});
    return 'other' if !defined $n || $n == 0;
    # the answer and the end come together: read the rest, so "refused" means all of it
    my $rest = '';
    sysread($s, $rest, 4096) for 1 .. 2;
    $buf .= $rest;
    if ($buf =~ m{^HTTP/1\.1 503 }) {
        ($first_refusal) = $buf =~ /^([^\r\n]*)/ if $first_refusal eq '';
        return 'refused';
    }
    return 'other';
}

my %count = (held => 0, refused => 0, other => $failed);
my @held;
for my $s (@sock) {
    my $st = state_of($s);
    $count{$st}++;
    if ($st eq 'held') { push @held, $s } else { close $s }
}
if ($ready ne '') {
    open my $f, '>', "$ready.tmp" or die "$ready: $!";
    printf $f "opened=%d\nheld=%d\nrefused=%d\nother=%d\n", scalar(@sock), $count{held},
        $count{refused}, $count{other};
    close $f;
    rename "$ready.tmp", $ready or die "$ready: $!";
}
my $deadline = time + $timeout;
sleep 0.1 while ($hold eq '' || !-e $hold) && time < $deadline && $hold ne '';
my $held_at_end = grep { state_of($_) eq 'held' } @held;
printf "opened=%d\nheld=%d\nrefused=%d\nother=%d\nheld_at_end=%d\nfirst_refusal=%s\n",
    scalar(@sock), $count{held}, $count{refused}, $count{other}, $held_at_end, $first_refusal;
exit 0;
