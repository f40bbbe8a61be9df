using System.Text.Json;
using System.Text.Json.Serialization;
using UploadService.Storage;

namespace UploadService.Apis;

/// <summary>
/// Source-generated JSON for every type the HTTP API writes, with ASP.NET Core's web defaults (camelCase).
/// First in the HTTP JSON options' resolver chain, so responses are written without reflection (and under
/// Native AOT, where reflection-based serialization is unavailable, at all); problem details have their own.
/// </summary>
[JsonSourceGenerationOptions(JsonSerializerDefaults.Web)]
[JsonSerializable(typeof(StoredFile))]
[JsonSerializable(typeof(FilesApi.FileList))]
[JsonSerializable(typeof(FilesApi.UploadedFiles))]
internal sealed partial class HttpJson : JsonSerializerContext
{
    public static void AddTo(IServiceCollection services) =>
        services.ConfigureHttpJsonOptions(options => options.SerializerOptions.TypeInfoResolverChain.Insert(0, Default));
}
