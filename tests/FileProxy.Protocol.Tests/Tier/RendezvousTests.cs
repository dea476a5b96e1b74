using System.Globalization;
using FileProxy.Protocol.Tier;

namespace FileProxy.Protocol.Tests.Tier;

/// <summary>Rendezvous hashing: one owner per name whatever the list's order, an even spread, and only about 1/N of
/// the names moving when a peer joins or leaves.</summary>
public sealed class RendezvousTests
{
    private static readonly TierPeer[] Three = [Peer("10.0.0.1:5000"), Peer("10.0.0.2:5000"), Peer("10.0.0.3:5000")];
    private static readonly string[] Names = [.. Enumerable.Range(0, 10_000).Select(i => string.Create(CultureInfo.InvariantCulture, $"photos/{i:D5}.jpg"))];

    [Fact]
    public void The_owner_does_not_depend_on_the_order_of_the_list()
    {
        var one = new Rendezvous(Three);
        var other = new Rendezvous([Three[2], Three[0], Three[1]]);

        Names.Select(name => one.Peers[one.Owner(name)]).Should().Equal(Names.Select(name => other.Peers[other.Owner(name)]));
    }

    [Fact]
    public void Scores_are_stable_values_not_per_process_hashes()
    {
        // Pinned: a change here would move every name of every running tier (and split a tier across versions).
        Rendezvous.Score("10.0.0.1:5000", "photos/00000.jpg").Should().Be(Rendezvous.Score("10.0.0.1:5000", "photos/00000.jpg"));
        Rendezvous.Score("10.0.0.1:5000", "a").Should().Be(PinnedScore);
    }

    [Fact]
    public void Three_peers_own_about_a_third_each()
    {
        var hash = new Rendezvous(Three);

        var counts = Names.GroupBy(hash.Owner).Select(group => group.Count()).ToList();

        counts.Should().HaveCount(3);
        counts.Should().OnlyContain(count => count > 3000 && count < 3700, "10,000 names over 3 peers: 3,333 each, give or take 2 %");
    }

    [Fact]
    public void Adding_a_fourth_peer_moves_20_to_30_percent_of_names_and_only_to_the_new_peer()
    {
        var three = new Rendezvous(Three);
        var four = new Rendezvous([.. Three, Peer("10.0.0.4:5000")]);

        var moved = Names.Where(name => three.Peers[three.Owner(name)] != four.Peers[four.Owner(name)]).ToList();

        (moved.Count / (double)Names.Length).Should().BeInRange(0.20, 0.30);
        moved.Should().OnlyContain(name => four.Peers[four.Owner(name)] == Peer("10.0.0.4:5000"));
    }

    [Fact]
    public void Removing_a_peer_moves_only_its_own_names_to_their_second_choice()
    {
        var three = new Rendezvous(Three);
        var two = new Rendezvous([Three[0], Three[1]]);
        Span<int> order = stackalloc int[3];

        foreach (var name in Names)
        {
            var before = three.Peers[three.Owner(name)];
            var after = two.Peers[two.Owner(name)];
            if (before != Three[2])
            {
                after.Should().Be(before);
            }
            else
            {
                three.Rank(name, order);
                after.Should().Be(three.Peers[order[1]], "the next peer in the name's ranking takes it over");
            }
        }
    }

    [Theory]
    [InlineData("127.0.0.1:5000", "127.0.0.1", 5000, "127.0.0.1:5000")]
    [InlineData("Cache-A:5001", "cache-a", 5001, "cache-a:5001")]
    [InlineData("[::1]:5000", "::1", 5000, "[::1]:5000")]
    public void Peers_parse_to_one_spelling(string text, string host, int port, string id)
    {
        TierPeer.TryParse(text, out var peer).Should().BeTrue();

        peer.Should().Be(new TierPeer(host, port));
        peer.Id.Should().Be(id);
    }

    [Theory]
    [InlineData("127.0.0.1")]
    [InlineData("127.0.0.1:0")]
    [InlineData("127.0.0.1:65536")]
    [InlineData(":5000")]
    [InlineData("::1:5000")]
    [InlineData("a b:5000")]
    public void Peers_without_a_host_and_a_port_are_refused(string text)
    {
        TierPeer.TryParse(text, out _).Should().BeFalse();
    }

    [Fact]
    public void A_comma_separated_list_parses_in_order()
    {
        TierPeer.TryParseList("a:1, b:2,c:3", out var peers, out _).Should().BeTrue();

        peers.Should().Equal(Peer("a:1"), Peer("b:2"), Peer("c:3"));
    }

    private const ulong PinnedScore = 4008001428750054953;

    private static TierPeer Peer(string text) => TierPeer.TryParse(text, out var peer) ? peer : throw new ArgumentException(text);
}
