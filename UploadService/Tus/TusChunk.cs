using System.Security.Cryptography;
using UploadService.Storage;

namespace UploadService.Tus;

/// <summary>
/// One request body on its way into an upload (a PATCH, or a creation with data): the tus policy of an
/// append, so that no store repeats it. It copies at most its limit (<see cref="FileTooLargeException"/>
/// past it), feeds the client's checksum and the upload's running SHA-256 (<see cref="TusRunningHashes"/>),
/// and decides what a failed append keeps (<see cref="KeepsWhatArrived"/>). Dispose it when the request ends.
/// </summary>
public sealed class TusChunk : IDisposable
{
    private readonly Stream _body;
    private readonly long _maxBytes;
    private readonly ChunkChecksum? _checksum;
    private readonly IncrementalHash? _checksumHash;
    private readonly TusRunningHashes _hashes;
    private readonly string _uploadId;
    private TusRunningHashes.Entry? _running;

    /// <param name="body">The bytes; how many is not known before they are read.</param>
    /// <param name="upload">The upload they are appended to, at its offset.</param>
    /// <param name="maxBytes">How many bytes the chunk may carry (to the upload's length or the size limit).</param>
    /// <param name="checksum">The client's Upload-Checksum, when it sent one.</param>
    /// <param name="hashes">The running SHA-256s of this process's uploads.</param>
    public TusChunk(Stream body, TusUploadInfo upload, long maxBytes, ChunkChecksum? checksum, TusRunningHashes hashes)
    {
        _body = body;
        _maxBytes = maxBytes;
        _checksum = checksum;
        _checksumHash = checksum?.CreateHash();
        _hashes = hashes;
        _uploadId = upload.Id;
        _running = hashes.Take(upload);
    }

    /// <summary>
    /// Copies the body into <paramref name="destination"/>, which then holds exactly the bytes that arrived (up
    /// to the limit), also when this throws. A checksum that does not match throws
    /// <see cref="ChecksumMismatchException"/> after the copy.
    /// </summary>
    public async Task CopyToAsync(Stream destination, CancellationToken cancellationToken)
    {
        try
        {
            await HashingCopy.CopyAsync(_body, destination, _maxBytes, [_running?.Hash, _checksumHash], cancellationToken);
            if (_checksum is not null && !_checksumHash!.GetHashAndReset().AsSpan().SequenceEqual(_checksum.Expected))
            {
                throw new ChecksumMismatchException(_checksum.Algorithm);
            }
        }
        catch (Exception)
        {
            DropRunningHash(); // whatever the upload keeps, this process has not seen it as one sequence
            throw;
        }
    }

    /// <summary>
    /// Whether an append that failed with <paramref name="exception"/> keeps the bytes that arrived before it:
    /// a broken connection (or a body past the limit, which the copy never writes) keeps them, as tus intends.
    /// A chunk with a checksum is all or nothing, and a spent quota or a full disk discards the chunk: keeping
    /// part of it would use up what there is not.
    /// </summary>
    public bool KeepsWhatArrived(Exception exception) =>
        _checksum is null && exception is not QuotaExceededException && !StorageFull.Is(exception);

    /// <summary>The lowercase hex SHA-256 of all of the upload's bytes after this chunk, or null when they must be read.</summary>
    public string? Sha256()
    {
        var running = _running;
        _running = null;
        using (running)
        {
            return running is null ? null : Convert.ToHexStringLower(running.Hash.GetHashAndReset());
        }
    }

    /// <summary>The append persisted the upload at <paramref name="offset"/>: the running hash goes on with the next chunk.</summary>
    public void Persisted(long offset)
    {
        if (_running is not null)
        {
            _hashes.Keep(_uploadId, _running, offset);
            _running = null;
        }
    }

    public void Dispose()
    {
        DropRunningHash();
        _checksumHash?.Dispose();
    }

    private void DropRunningHash()
    {
        _running?.Dispose();
        _running = null;
    }
}

/// <summary>The checksum a client sent for one chunk (tus checksum extension).</summary>
public sealed record ChunkChecksum(string Algorithm, byte[] Expected)
{
    public IncrementalHash CreateHash() => IncrementalHash.CreateHash(Algorithm switch
    {
        "sha1" => HashAlgorithmName.SHA1,
        "sha256" => HashAlgorithmName.SHA256,
        "md5" => HashAlgorithmName.MD5,
        _ => throw new ArgumentOutOfRangeException(nameof(Algorithm), Algorithm, "unsupported checksum algorithm"),
    });
}

public sealed class ChecksumMismatchException(string algorithm)
    : Exception($"The chunk's {algorithm} checksum does not match Upload-Checksum; the chunk was discarded.");
