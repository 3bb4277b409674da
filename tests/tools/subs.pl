#!/usr/bin/perl
# subs.pl: many subscribers in one process, for tests/94-multiplexed.bats.
#
#   subs.pl --port P [--addr A] [--count N] [--path /t] [--sse] [--resume]
#           --expect M [--timeout S] [--ready FILE] [--rcvbuf B] [--hold FILE]
#
# Opens N subscriptions (HTTP/1.0, so the stream is bare lines, or with --sse Server-Sent
# Events, close-delimited) from source address A, writes "ready" to FILE once every response
# head is in, and reads until each subscriber has the M messages {"n":1} ... {"n":M} or S
# seconds pass. With --resume a subscriber whose connection ends reconnects with Last-Event-ID:
# the id of the last event it got (README 3.9), as a browser's EventSource does. --rcvbuf asks
# for a small receive buffer (a reader whose socket fills fast); --hold reads nothing until
# FILE exists (a reader that stopped reading). Messages are counted by their "n" (any other
# member may follow it); "after" counts {"after":...} messages.
# Prints name=value figures: subscribers, complete (got all M, in order, once), lost,
# duplicates, reordered, gaps (gap notices), reconnects, errors. Exit 0 when it measured.
use strict;
use warnings;
use Getopt::Long;
use IO::Poll qw(POLLIN POLLHUP POLLERR);
use IO::Socket::INET;
use Socket qw(SOL_SOCKET SO_RCVBUF inet_aton pack_sockaddr_in);
use Time::HiRes qw(time sleep);

my ($port, $addr, $count, $path, $sse, $resume, $expect, $timeout, $ready, $rcvbuf, $hold) =
    (0, '127.0.0.1', 1, '/t', 0, 0, 0, 60, '', 0, '');
GetOptions('port=i' => \$port, 'addr=s' => \$addr, 'count=i' => \$count, 'path=s' => \$path,
    'sse' => \$sse, 'resume' => \$resume, 'expect=i' => \$expect, 'timeout=f' => \$timeout,
    'ready=s' => \$ready, 'rcvbuf=i' => \$rcvbuf, 'hold=s' => \$hold) or exit 2;

my (@sock, @buf, @got, @last_id, @head, @dead);
my ($dups, $reordered, $gaps, $reconnects, $errors, $after) = (0, 0, 0, 0, 0, 0);
my $poll = IO::Poll->new;
my $deadline = time + $timeout;

sub request {
    my ($i) = @_;
    my $s = IO::Socket::INET->new(LocalAddr => $addr, Proto => 'tcp', Blocking => 1);
    if ($s && $rcvbuf) { setsockopt($s, SOL_SOCKET, SO_RCVBUF, $rcvbuf) or die "SO_RCVBUF: $!"; }
    if (!$s || !$s->connect(pack_sockaddr_in($port, inet_aton('127.0.0.1')))) {
        $errors++;
        $dead[$i] = 1;
        return;
    }
    my $req = "GET $path HTTP/1.0\r\n";
    $req .= "Accept: text/event-stream\r\n" if $sse;
    $req .= "Last-Event-ID: $last_id[$i]\r\n" if $sse && defined $last_id[$i];
    print $s "$req\r\n";
    $s->blocking(0);
    $sock[$i] = $s;
    $buf[$i] = '';
    $head[$i] = 0;
    $poll->mask($s => POLLIN);
}

sub message {
    my ($i, $json, $id) = @_;
    if ($json =~ /^\{"gap"/) { $gaps++; return; }
    if ($json =~ /^\{"after"/) { $after++; return; }
    return unless $json =~ /^\{"n":(\d+)[,}]/;
    my $n = $1;
    my $have = scalar @{ $got[$i] };
    if ($have && $n <= $got[$i][-1]) { $dups++ if grep { $_ == $n } @{ $got[$i] }; $reordered++ unless grep { $_ == $n } @{ $got[$i] }; return; }
    push @{ $got[$i] }, $n;
    $last_id[$i] = $id if defined $id;
}

sub parse {
    my ($i) = @_;
    if (!$head[$i]) {
        my $end = index($buf[$i], "\r\n\r\n");
        return if $end < 0;
        my $status = substr($buf[$i], 0, 12);
        if ($status !~ /^HTTP\/1\.1 200/) { $errors++; }
        $buf[$i] = substr($buf[$i], $end + 4);
        $head[$i] = 1;
    }
    if ($sse) {
        while ((my $end = index($buf[$i], "\n\n")) >= 0) {
            my $event = substr($buf[$i], 0, $end);
            $buf[$i] = substr($buf[$i], $end + 2);
            my ($id) = $event =~ /^id: (\S+)$/m;
            my ($data) = $event =~ /^data: (.*)$/m;
            if (defined $data) { message($i, $data, $id); }
            elsif (defined $id) { $last_id[$i] = $id; }
        }
    } else {
        while ((my $end = index($buf[$i], "\r\n")) >= 0) {
            message($i, substr($buf[$i], 0, $end), undef);
            $buf[$i] = substr($buf[$i], $end + 2);
        }
    }
}

for my $i (0 .. $count - 1) { $got[$i] = []; request($i); }
my %index;
for my $i (0 .. $count - 1) { $index{ fileno($sock[$i]) } = $i if $sock[$i]; }

# Every head in (or the deadline), then say so.
my $said = 0;
while (time < $deadline) {
    my $heads = grep { $head[$_] || $dead[$_] } 0 .. $count - 1;
    if (!$said && $heads == $count) {
        if ($ready) { open(my $f, '>', $ready) or die; print $f "ready\n"; close $f; }
        $said = 1;
    }
    my $complete = grep { scalar(@{ $got[$_] }) >= $expect } 0 .. $count - 1;
    last if $said && $complete == $count && !$hold;
    last if $said && $hold && $after >= $count;
    if ($hold && $said && !-e $hold) { sleep 0.05; next; }
    $poll->poll(0.2);
    for my $s ($poll->handles(POLLIN | POLLHUP | POLLERR)) {
        my $i = $index{ fileno($s) };
        my $n = sysread($s, my $chunk, 65536);
        if (defined $n && $n > 0) { $buf[$i] .= $chunk; parse($i); next; }
        next if !defined $n && $!{EAGAIN};
        $poll->remove($s);
        delete $index{ fileno($s) };
        close $s;
        if ($resume && scalar(@{ $got[$i] }) < $expect) {
            $reconnects++;
            sleep 0.05;
            request($i);
            $index{ fileno($sock[$i]) } = $i if $sock[$i];
        } else {
            $dead[$i] = 1;
        }
    }
}

my ($complete, $lost) = (0, 0);
for my $i (0 .. $count - 1) {
    my @g = @{ $got[$i] };
    my $ok = @g == $expect;
    for my $k (0 .. $#g) { $ok = 0 if $g[$k] != $k + 1; }
    $complete++ if $ok;
    $lost += $expect - @g if @g < $expect;
}
print "subscribers=$count\ncomplete=$complete\nlost=$lost\nduplicates=$dups\n",
    "reordered=$reordered\ngaps=$gaps\nreconnects=$reconnects\nerrors=$errors\n",
    "after=$after\nfirst=", (@{ $got[0] } ? $got[0][0] : 0), "\n";
exit 0;
