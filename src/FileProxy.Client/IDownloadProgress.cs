using FileProxy.Protocol.Wire;

namespace FileProxy.Client;

/// <summary>What one download tells whoever shows its progress. Called from the download's own threads (the
/// body's writer among them), so an implementation must be safe to call from any thread.</summary>
internal interface IDownloadProgress
{
    /// <summary>The answer is Ok: its length and where it comes from (cache hit, miss, origin) are known.</summary>
    void Started(ResponseHead head);

    /// <summary>This many bytes of the body are written so far (counted from the start of the output).</summary>
    void Advanced(long bytes);
}
