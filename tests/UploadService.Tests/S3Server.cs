using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Amazon.S3;
using Amazon.S3.Model;
using LocalS3;
using UploadService.Storage;

namespace UploadService.Tests;

/// <summary>
/// A local S3-compatible server for the s3 backend's tests: s3rver (npm, from <c>tests/s3-server</c>, which
/// <c>.ci/run</c> installs and this fixture installs when missing), on 127.0.0.1 and a free port, with its data in a temp folder; stopped (and its
/// data removed) when the tests end. Each test gets a bucket of its own from <see cref="CreateBucketAsync"/>.
/// </summary>
public sealed class S3Server : IAsyncLifetime
{
    public const string AccessKeyId = S3rver.Account;
    public const string SecretAccessKey = S3rver.Account;
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan InstallTimeout = TimeSpan.FromMinutes(3);

    private readonly TempDirectory _data = new();
    private readonly TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Process? _process;

    public string ServiceUrl { get; private set; } = "";

    public async Task InitializeAsync()
    {
        var serverDirectory = S3rver.Folder(RepositoryRoot());
        if (!S3rver.IsInstalled(RepositoryRoot()))
        {
            await InstallAsync(serverDirectory); // a fresh clone: `dotnet test` needs nothing else (.ci/run installs it up front)
        }

        var port = FreePort();
        ServiceUrl = $"http://127.0.0.1:{port}";
        var start = new ProcessStartInfo("node", [S3rver.Script, .. S3rver.Arguments(_data.Path, port)])
        {
            WorkingDirectory = serverDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        _process = Process.Start(start) ?? throw new InvalidOperationException("node did not start");
        _process.StandardInput.Close();
        var output = new System.Collections.Concurrent.ConcurrentQueue<string>();
        void OnLine(object sender, DataReceivedEventArgs line)
        {
            if (line.Data is null)
            {
                return;
            }

            if (line.Data.Contains("S3rver listening on", StringComparison.Ordinal))
            {
                _ready.TrySetResult();
            }
            else if (output.Count < 50)
            {
                output.Enqueue(line.Data);
            }
        }

        _process.OutputDataReceived += OnLine;
        _process.ErrorDataReceived += OnLine;
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        _process.EnableRaisingEvents = true;
        _process.Exited += (_, _) => _ready.TrySetException(new InvalidOperationException(
            "s3rver exited: " + string.Join(Environment.NewLine, output)));
        await _ready.Task.WaitAsync(StartTimeout);
    }

    /// <summary>A fresh, empty bucket.</summary>
    public async Task<string> CreateBucketAsync()
    {
        var bucket = "test-" + Guid.NewGuid().ToString("N");
        using var client = CreateClient();
        await client.PutBucketAsync(new PutBucketRequest { BucketName = bucket });
        return bucket;
    }

    public S3StoreOptions Options(string bucket, long partSizeBytes = S3StoreOptions.MinPartSizeBytes) => new()
    {
        ServiceUrl = ServiceUrl,
        Bucket = bucket,
        AccessKeyId = AccessKeyId,
        SecretAccessKey = SecretAccessKey,
        Region = "auto",
        PartSizeBytes = partSizeBytes,
    };

    /// <summary>The upload service's settings for the s3 backend on <paramref name="bucket"/> of this server.</summary>
    public Dictionary<string, string> ServiceSettings(string bucket) => new()
    {
        ["Storage:Provider"] = "s3",
        ["Storage:S3:ServiceUrl"] = ServiceUrl,
        ["Storage:S3:Bucket"] = bucket,
        ["Storage:S3:AccessKeyId"] = AccessKeyId,
        ["Storage:S3:SecretAccessKey"] = SecretAccessKey,
        ["Storage:S3:Region"] = "auto",
    };

    /// <summary>A client configured exactly as the store configures its own.</summary>
    public AmazonS3Client CreateClient() => Options("unused").CreateClient();

    /// <summary>Every key in <paramref name="bucket"/>.</summary>
    public async Task<IReadOnlyList<string>> KeysAsync(string bucket)
    {
        using var client = CreateClient();
        var keys = new List<string>();
        var request = new ListObjectsV2Request { BucketName = bucket };
        do
        {
            var page = await client.ListObjectsV2Async(request);
            keys.AddRange((page.S3Objects ?? []).Select(entry => entry.Key));
            request.ContinuationToken = page.IsTruncated == true ? page.NextContinuationToken : null;
        }
        while (request.ContinuationToken is not null);

        return keys;
    }

    public Task DisposeAsync()
    {
        if (_process is { HasExited: false })
        {
            _process.Kill(entireProcessTree: true);
            _process.WaitForExit(TimeSpan.FromSeconds(10));
        }

        _process?.Dispose();
        _data.Dispose();
        return Task.CompletedTask;
    }

    private static async Task InstallAsync(string directory)
    {
        var install = new ProcessStartInfo("npm")
        {
            ArgumentList = { "ci", "--no-audit", "--no-fund", "--loglevel=error" },
            WorkingDirectory = directory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        using var process = Process.Start(install) ?? throw new InvalidOperationException("npm did not start");
        var output = process.StandardOutput.ReadToEndAsync();
        var errors = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(InstallTimeout);
        await process.WaitForExitAsync(timeout.Token);
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"`npm ci` in {directory} failed: {await output}{await errors}");
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static string RepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (System.IO.File.Exists(Path.Combine(directory.FullName, "Solution.sln")))
            {
                return directory.FullName;
            }
        }

        throw new InvalidOperationException("Solution.sln not found above " + AppContext.BaseDirectory);
    }
}

[CollectionDefinition(Name)]
public sealed class S3ServerCollection : ICollectionFixture<S3Server>
{
    public const string Name = "S3 server";
}
