using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json;
using Amazon.S3;
using Amazon.S3.Transfer;
using UploadService.Storage;

namespace Bench;

/// <summary>
/// The reference clients of the s3 backend's targets, uploading into the same local S3 server and bucket as the
/// service's s3 backend: @aws-sdk/lib-storage's <c>Upload</c> and @aws-sdk/client-s3's <c>PutObject</c>
/// (bench/peer/s3-client.mjs on the worker's Node 22, driven over its stdin, one command per upload), and the AWS
/// SDK for .NET's <c>TransferUtility</c> (in this process), each with its default settings and the service's
/// client configuration (<see cref="S3StoreOptions.ClientConfig"/>).
/// </summary>
public sealed class S3References : IAsyncDisposable
{
    static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(60);

    readonly Process node;
    readonly ConcurrentDictionary<int, TaskCompletionSource> pending = new();
    readonly AmazonS3Client s3;
    readonly TransferUtility transfer;
    readonly string bucket;
    readonly List<string> errors = [];
    int next;

    S3References(Process node, S3StoreOptions options)
    {
        this.node = node;
        bucket = options.Bucket;
        s3 = options.CreateClient();
        transfer = new TransferUtility(s3, new TransferUtilityConfig());
        TransferSettings = $"TransferUtility defaults: {new TransferUtilityConfig().ConcurrentServiceRequests} requests in flight, "
            + $"parts from {new TransferUtilityConfig().MinSizeBeforePartUpload / (1 << 20)} MiB on";
    }

    /// <summary>What lib-storage's Upload runs with (its defaults, as the script reports them).</summary>
    public string UploadSettings { get; private set; } = "";

    public string TransferSettings { get; }

    /// <summary>Starts the Node client; null (with the reason in <paramref name="skipped"/>) where bench/peer is not installed.</summary>
    public static async Task<S3References?> Start(string repo, S3StoreOptions options, Action<string> skipped)
    {
        var peer = Path.Combine(repo, "bench", "peer");
        if (!Directory.Exists(Path.Combine(peer, "node_modules", "@aws-sdk", "lib-storage")))
        {
            skipped("bench/peer/node_modules is missing (cd bench/peer && npm ci)");
            return null;
        }

        var info = new ProcessStartInfo(Stack.Node(repo))
        {
            WorkingDirectory = peer,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        info.ArgumentList.Add("s3-client.mjs");
        info.Environment["S3_ENDPOINT"] = options.ServiceUrl;
        info.Environment["S3_BUCKET"] = options.Bucket;
        info.Environment["S3_KEY"] = options.AccessKeyId;
        var process = Process.Start(info) ?? throw new InvalidOperationException("s3-client: node did not start");
        var references = new S3References(process, options);
        var ready = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            if (e.Data.StartsWith("s3-client: ready", StringComparison.Ordinal)) ready.TrySetResult(e.Data);
            else references.Answer(e.Data);
        };
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            lock (references.errors) references.errors.Add(e.Data);
        };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        process.EnableRaisingEvents = true;
        process.Exited += (_, _) => ready.TrySetException(new InvalidOperationException("s3-client exited: " + references.Errors()));
        var line = await ready.Task.WaitAsync(StartTimeout);
        references.UploadSettings = "lib-storage Upload defaults: " + line["s3-client: ready; Upload ".Length..];
        return references;
    }

    /// <summary>lib-storage's <c>Upload</c> of <paramref name="size"/> bytes (a stream of unknown length, as a request body is).</summary>
    public Task Upload(string key, long size) => Send("upload", key, size);

    /// <summary>One <c>PutObject</c> of <paramref name="size"/> bytes.</summary>
    public Task Put(string key, long size) => Send("put", key, size);

    /// <summary>TransferUtility's upload of <paramref name="size"/> bytes from a stream of known length.</summary>
    public Task Transfer(string key, long size) => transfer.UploadAsync(new TransferUtilityUploadRequest
    {
        BucketName = bucket,
        Key = key,
        InputStream = new PayloadStream(size),
        AutoCloseStream = true,
    });

    Task Send(string op, string key, long size)
    {
        var id = Interlocked.Increment(ref next);
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        pending[id] = done;
        var command = JsonSerializer.Serialize(new Dictionary<string, object> { ["id"] = id, ["op"] = op, ["key"] = key, ["size"] = size });
        lock (node) node.StandardInput.WriteLine(command);
        return done.Task;
    }

    void Answer(string line)
    {
        var parts = line.Split(' ', 3);
        if (parts.Length < 2 || !int.TryParse(parts[0], out var id) || !pending.TryRemove(id, out var done)) return;
        if (parts[1] == "ok") done.SetResult();
        else done.SetException(new InvalidOperationException($"s3-client: {(parts.Length > 2 ? parts[2] : line)}"));
    }

    string Errors()
    {
        lock (errors) return string.Join('\n', errors.TakeLast(20));
    }

    public async ValueTask DisposeAsync()
    {
        transfer.Dispose();
        s3.Dispose();
        node.StandardInput.Close(); // the script exits when its input ends
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        try
        {
            await node.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            node.Kill();
        }

        node.Dispose();
    }

    /// <summary>The payload as a seekable stream of known length (TransferUtility reads it part by part).</summary>
    sealed class PayloadStream(long length) : Stream
    {
        long position;

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            var inBlock = (int)(position % Payload.BlockSize);
            var count = (int)Math.Min(Math.Min(buffer.Length, Payload.BlockSize - inBlock), length - position);
            if (count <= 0) return 0;
            Payload.Block.AsSpan(inBlock, count).CopyTo(buffer);
            position += count;
            return count;
        }

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            ValueTask.FromResult(Read(buffer.Span));

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            Task.FromResult(Read(buffer.AsSpan(offset, count)));

        public override long Seek(long offset, SeekOrigin origin) => position = origin switch
        {
            SeekOrigin.Begin => offset,
            SeekOrigin.Current => position + offset,
            _ => length + offset,
        };

        public override bool CanRead => true;
        public override bool CanSeek => true;
        public override bool CanWrite => false;
        public override long Length => length;
        public override long Position { get => position; set => position = value; }
        public override void Flush() { }
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
