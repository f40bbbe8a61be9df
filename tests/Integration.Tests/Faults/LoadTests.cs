using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using Xunit.Abstractions;

namespace Integration.Tests;

/// <summary>
/// Bounded load through the Worker on loopback: 32 concurrent clients upload a fixed number of files each
/// (small ones of 4 KiB–1 MiB and 64 MiB ones, by PUT and by tus), spread over several users, several clients
/// per user, and several clients writing the same names. Afterwards every listed file is listed once, has the
/// size and sha256 of a version uploaded under its name (last writer wins, never a mix), and reads back with
/// that sha256; no request got a 5xx. The figures go to the test output.
/// The default is a light run for CI; <c>LOAD_TEST=full</c> runs the full one (see docs/testing.md, "Faults and load").
/// </summary>
[Collection(AppCollection.Name)]
public sealed class LoadTests(AppFixture app, ITestOutputHelper output)
{
    private const int MiB = 1 << 20;
    private const int LargeSize = 64 * MiB;
    private const int TusChunkSize = 16 * MiB;
    private const int SharedNamesPerUser = 4;
    private const int ReadParallelism = 8;

    private sealed record Profile(string Name, int Clients, int Users, int UploadsPerClient, int LargeUploads, TimeSpan Deadline);

    private static readonly Profile Light = new("light", Clients: 32, Users: 4, UploadsPerClient: 6, LargeUploads: 12, TimeSpan.FromMinutes(4));
    private static readonly Profile Full = new("full", Clients: 32, Users: 8, UploadsPerClient: 24, LargeUploads: 96, TimeSpan.FromMinutes(20));

    private static Profile Selected =>
        string.Equals(Environment.GetEnvironmentVariable("LOAD_TEST"), "full", StringComparison.OrdinalIgnoreCase) ? Full : Light;

    private sealed record Upload(int Client, string User, string Name, bool Tus, SeededBytes Bytes);

    private sealed record Version(long Size, string Sha256);

    [Fact]
    public async Task Concurrent_clients_through_the_worker_lose_nothing_and_mix_nothing()
    {
        var profile = Selected;
        using var deadline = new CancellationTokenSource(profile.Deadline);
        var run = Guid.NewGuid().ToString("N")[..8];
        var users = Enumerable.Range(0, profile.Users).Select(u => $"load-{run}-{u}").ToArray();
        var plan = Plan(profile, users);
        // One HttpClient (its own connections) per client; the first of each user's clients also checks.
        var clients = Enumerable.Range(0, profile.Clients).Select(c => app.CreateWorkerClient(users[c % users.Length])).ToArray();
        var checker = users.ToDictionary(user => user, user => clients[Array.IndexOf(users, user)]);
        var serverErrors = new ConcurrentBag<string>();
        var failures = new ConcurrentBag<string>();
        var uploaded = new ConcurrentDictionary<(string User, string Name), ConcurrentBag<Version>>();
        try
        {
            // Upload: each client works through its own list, all clients at once.
            var watch = Stopwatch.StartNew();
            await Task.WhenAll(plan.GroupBy(upload => upload.Client).Select(list => Task.Run(async () =>
            {
                foreach (var upload in list)
                {
                    var status = await SendAsync(clients[upload.Client], upload, deadline.Token);
                    if (status >= 500) serverErrors.Add($"{upload.User}/{upload.Name}: {status}");
                    else if (status is < 200 or >= 300) failures.Add($"{upload.User}/{upload.Name}: {status}");
                    else uploaded.GetOrAdd((upload.User, upload.Name), _ => []).Add(new(upload.Bytes.Length, upload.Bytes.Sha256Hex()));
                }
            })));
            var uploadTime = watch.Elapsed;
            var uploadedBytes = plan.Sum(upload => upload.Bytes.Length);

            // Check: every name listed once, each with a version uploaded under it, and its bytes read back.
            watch.Restart();
            var mismatches = new ConcurrentBag<string>();
            var listed = new List<(string User, StoredFile File)>();
            foreach (var user in users)
            {
                var files = await ListAllAsync(checker[user], serverErrors, deadline.Token);
                foreach (var duplicate in files.GroupBy(f => f.Name).Where(g => g.Count() > 1))
                    mismatches.Add($"{user}/{duplicate.Key} listed {duplicate.Count()} times");
                var expectedNames = uploaded.Keys.Where(key => key.User == user).Select(key => key.Name).ToHashSet();
                foreach (var missing in expectedNames.Except(files.Select(f => f.Name)))
                    mismatches.Add($"{user}/{missing} uploaded but not listed");
                foreach (var file in files)
                {
                    if (!uploaded.TryGetValue((user, file.Name), out var versions))
                        mismatches.Add($"{user}/{file.Name} listed but never uploaded");
                    else if (!versions.Contains(new Version(file.Size, file.Sha256)))
                        mismatches.Add($"{user}/{file.Name}: {file.Size} bytes, sha256 {file.Sha256} is none of the {versions.Count} uploaded versions");
                    listed.Add((user, file));
                }
            }

            long readBytes = 0;
            await Parallel.ForEachAsync(listed, new ParallelOptions { MaxDegreeOfParallelism = ReadParallelism, CancellationToken = deadline.Token },
                async (entry, cancellationToken) =>
                {
                    using var get = await checker[entry.User].GetAsync(
                        "/files/" + entry.File.Name, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
                    if ((int)get.StatusCode >= 500) serverErrors.Add($"GET {entry.User}/{entry.File.Name}: {(int)get.StatusCode}");
                    await using var body = await get.Content.ReadAsStreamAsync(cancellationToken);
                    var counted = new CountingStream(body);
                    var sha = Convert.ToHexStringLower(await SHA256.HashDataAsync(counted, cancellationToken));
                    Interlocked.Add(ref readBytes, counted.Count);
                    if (get.StatusCode != HttpStatusCode.OK || sha != entry.File.Sha256 || counted.Count != entry.File.Size)
                        mismatches.Add($"GET {entry.User}/{entry.File.Name}: {(int)get.StatusCode}, {counted.Count} bytes, sha256 {sha}, listed {entry.File.Sha256}");
                });
            var readTime = watch.Elapsed;

            var large = plan.Count(upload => upload.Bytes.Length == LargeSize);
            var report =
                $"load ({profile.Name}): {profile.Clients} clients, {plan.Count} uploads ({large} × 64 MiB, {plan.Count - large} of 4 KiB–1 MiB; " +
                $"{plan.Count(u => !u.Tus)} PUT, {plan.Count(u => u.Tus)} tus) for {users.Length} users, " +
                $"{uploadedBytes / (double)MiB:F0} MiB in {uploadTime.TotalSeconds:F1} s ({uploadedBytes / (double)MiB / uploadTime.TotalSeconds:F1} MiB/s); " +
                $"read back {listed.Count} files, {readBytes / (double)MiB:F0} MiB in {readTime.TotalSeconds:F1} s " +
                $"({readBytes / (double)MiB / readTime.TotalSeconds:F1} MiB/s); {serverErrors.Count} 5xx, {failures.Count} other failures, {mismatches.Count} mismatches";
            output.WriteLine(report);
            Console.WriteLine(report);

            Assert.True(serverErrors.IsEmpty, "5xx: " + string.Join("; ", serverErrors.Take(20)));
            Assert.True(failures.IsEmpty, "failed uploads: " + string.Join("; ", failures.Take(20)));
            Assert.True(mismatches.IsEmpty, "mismatches: " + string.Join("; ", mismatches.Take(20)));
            Assert.Equal(plan.Select(u => (u.User, u.Name)).Distinct().Count(), listed.Count);
        }
        catch (OperationCanceledException) when (deadline.IsCancellationRequested)
        {
            Assert.Fail($"the {profile.Name} load did not finish within {profile.Deadline.TotalMinutes} min");
        }
        finally
        {
            await DeleteEverythingAsync(checker.Values);
            foreach (var client in clients) client.Dispose();
        }
    }

    /// <summary>
    /// Every client's list of uploads, from a fixed seed: client c works for user c mod users; about a quarter
    /// of its uploads go to names its user's other clients write too; <see cref="Profile.LargeUploads"/> spread
    /// at random are 64 MiB, the rest 4 KiB–1 MiB; PUT or tus at random.
    /// </summary>
    private static List<Upload> Plan(Profile profile, string[] users)
    {
        var random = new Random(2026);
        var total = profile.Clients * profile.UploadsPerClient;
        var large = Enumerable.Range(0, total).OrderBy(_ => random.Next()).Take(profile.LargeUploads).ToHashSet();
        var plan = new List<Upload>();
        for (var i = 0; i < profile.UploadsPerClient; i++)
        {
            for (var client = 0; client < profile.Clients; client++)
            {
                var index = i * profile.Clients + client;
                var size = large.Contains(index) ? LargeSize : random.Next(4 * 1024, MiB + 1);
                var name = random.Next(4) == 0 ? $"shared/{random.Next(SharedNamesPerUser)}.bin" : $"client-{client}/upload-{i}.bin";
                plan.Add(new Upload(client, users[client % users.Length], name, Tus: random.Next(2) == 0, new SeededBytes(size, seed: index + 1)));
            }
        }

        return plan;
    }

    /// <summary>One upload by PUT, or by tus (create, then PATCHes of at most 16 MiB); the first non-2xx status ends it.</summary>
    private static async Task<int> SendAsync(HttpClient client, Upload upload, CancellationToken cancellationToken)
    {
        var bytes = upload.Bytes;
        try
        {
            if (!upload.Tus)
            {
                using var put = await client.PutAsync("/files/" + upload.Name, bytes.Range(0, bytes.Length), cancellationToken);
                return (int)put.StatusCode;
            }

            using var create = Tus.Request(HttpMethod.Post, "/uploads");
            create.Headers.Add("Upload-Length", bytes.Length.ToString());
            create.Headers.Add("Upload-Metadata", Tus.Metadata(upload.Name));
            using var created = await client.SendAsync(create, cancellationToken);
            if (created.StatusCode != HttpStatusCode.Created) return (int)created.StatusCode;

            for (long offset = 0; offset < bytes.Length; offset += TusChunkSize)
            {
                using var patch = Tus.Request(HttpMethod.Patch, created.Headers.Location!.PathAndQuery,
                    bytes.Range(offset, Math.Min(TusChunkSize, bytes.Length - offset)));
                patch.Headers.Add("Upload-Offset", offset.ToString());
                using var patched = await client.SendAsync(patch, cancellationToken);
                if (patched.StatusCode != HttpStatusCode.NoContent) return (int)patched.StatusCode;
            }

            return (int)HttpStatusCode.NoContent;
        }
        catch (HttpRequestException ex)
        {
            // No status: the connection failed. Counted as a failure, never as a success.
            return ex.StatusCode is { } status ? (int)status : 0;
        }
    }

    private static async Task<List<StoredFile>> ListAllAsync(HttpClient client, ConcurrentBag<string> serverErrors, CancellationToken cancellationToken)
    {
        var files = new List<StoredFile>();
        string? cursor = null;
        do
        {
            var url = "/files?limit=1000" + (cursor is null ? "" : "&cursor=" + Uri.EscapeDataString(cursor));
            using var response = await client.GetAsync(url, cancellationToken);
            if ((int)response.StatusCode >= 500) serverErrors.Add($"list: {(int)response.StatusCode}");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var page = (await response.Content.ReadFromJsonAsync<FileList>(cancellationToken))!;
            files.AddRange(page.Files);
            cursor = page.NextCursor;
        }
        while (cursor is not null);

        return files;
    }

    /// <summary>Leaves the shared fixture's disk as it was: the load's files are deleted.</summary>
    private static async Task DeleteEverythingAsync(IEnumerable<HttpClient> clients)
    {
        using var cleanup = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        foreach (var client in clients)
        {
            try
            {
                var files = await ListAllAsync(client, [], cleanup.Token);
                await Parallel.ForEachAsync(files, new ParallelOptions { MaxDegreeOfParallelism = ReadParallelism, CancellationToken = cleanup.Token },
                    async (file, cancellationToken) => (await client.DeleteAsync("/files/" + file.Name, cancellationToken)).Dispose());
            }
            catch (Exception)
            {
                // Best effort, never masking the test's own outcome: the fixture removes its data root anyway.
            }
        }
    }

    /// <summary>Counts the bytes read through it.</summary>
    private sealed class CountingStream(Stream inner) : Stream
    {
        public long Count { get; private set; }

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            var n = await inner.ReadAsync(buffer, cancellationToken);
            Count += n;
            return n;
        }

        public override int Read(byte[] buffer, int offset, int count)
        {
            var n = inner.Read(buffer, offset, count);
            Count += n;
            return n;
        }

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => Count; set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
