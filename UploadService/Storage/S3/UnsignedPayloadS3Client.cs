using Amazon.Runtime;
using Amazon.Runtime.Internal;
using Amazon.S3;
using Amazon.S3.Model;

namespace UploadService.Storage;

/// <summary>
/// An S3 client that signs uploads of bytes (PutObject, UploadPart) with the literal <c>UNSIGNED-PAYLOAD</c>
/// in place of the body's SHA-256. SigV4 signs a hash of the body by default, so the SDK read every part once
/// more to hash it: as much CPU as the file's own SHA-256. S3 and R2 accept unsigned payloads; the headers are
/// still signed, and the body is covered by TLS where there is a network (R2's endpoints are HTTPS only) or
/// never leaves the machine (<c>http://storage.internal</c>, the Durable Object's outbound handler). The SDK's
/// own switch for it (<c>DisablePayloadSigning</c>) refuses plain HTTP, which is what <c>storage.internal</c>
/// is, and a precomputed <c>x-amz-content-sha256</c> header is dropped by its signer: the request's
/// precomputed payload hash, set before the signer runs, is what the signer takes for any scheme.
/// </summary>
internal sealed class UnsignedPayloadS3Client(AWSCredentials credentials, AmazonS3Config config) : AmazonS3Client(credentials, config)
{
    private const string UnsignedPayload = "UNSIGNED-PAYLOAD";

    protected override void CustomizeRuntimePipeline(RuntimePipeline pipeline)
    {
        base.CustomizeRuntimePipeline(pipeline);
        pipeline.AddHandlerBefore<Signer>(new UnsignedUploads());
    }

    private sealed class UnsignedUploads : PipelineHandler
    {
        public override void InvokeSync(IExecutionContext executionContext)
        {
            Mark(executionContext);
            base.InvokeSync(executionContext);
        }

        public override Task<T> InvokeAsync<T>(IExecutionContext executionContext)
        {
            Mark(executionContext);
            return base.InvokeAsync<T>(executionContext);
        }

        private static void Mark(IExecutionContext context)
        {
            if (context.RequestContext.OriginalRequest is PutObjectRequest or UploadPartRequest)
            {
                context.RequestContext.Request.PrecomputedContentSha256 = UnsignedPayload;
            }
        }
    }
}
