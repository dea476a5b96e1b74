using System.CommandLine;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Wire = FileProxy.Protocol.Wire;

namespace FileProxy.Hosting;

/// <summary>
/// The command-line side of TLS and shared tokens, the same on every program: a listening side takes a PEM
/// certificate and key (<c>--tls-cert</c>, <c>--tls-key</c>) and a token file; a connecting side takes
/// <c>--tls</c>, a PEM file of certificates to trust (<c>--tls-ca</c>) and a token file. Off by default.
/// </summary>
public static class SecurityOptions
{
    /// <summary>Longest token file read (a token is at most 256 bytes; the rest is room for a trailing newline).</summary>
    private const int MaxTokenFileBytes = 4096;

    public static Option<FileInfo?> TlsCertificate() =>
        new("--tls-cert") { Description = "Speak TLS with this PEM certificate (chain); needs --tls-key (default: off)" };

    public static Option<FileInfo?> TlsKey() =>
        new("--tls-key") { Description = "PEM private key of --tls-cert (default: off)" };

    public static Option<bool> Tls(string name = "--tls", string? description = null) =>
        new(name) { Description = description ?? "Speak TLS and check the server's certificate (system trust store, or --tls-ca)" };

    public static Option<FileInfo?> TlsCa(string name = "--tls-ca", string? description = null) =>
        new(name) { Description = description ?? "PEM certificates to trust instead of the system's store (a private CA or a self-signed server certificate); implies --tls (default: system store)" };

    public static Option<FileInfo?> TokenFile(string name = "--token-file", string? description = null) =>
        new(name) { Description = (description ?? "File holding a shared token (its first line): clients must present it") + " (default: none)" };

    /// <summary>Adds the check that a certificate comes with its key and a key with its certificate.</summary>
    public static void RequireBoth(Command command, Option<FileInfo?> certificate, Option<FileInfo?> key) =>
        command.Validators.Add(result =>
        {
            if ((result.GetResult(certificate) is null) != (result.GetResult(key) is null))
            {
                result.AddError("--tls-cert and --tls-key go together");
            }
        });

    /// <summary>The server certificate with its private key, or null without <c>--tls-cert</c>. Throws
    /// <see cref="IOException"/> with a readable reason (a start error).</summary>
    public static X509Certificate2? LoadCertificate(FileInfo? certificate, FileInfo? key)
    {
        if (certificate is null || key is null)
        {
            return null;
        }
        try
        {
            return X509Certificate2.CreateFromPemFile(certificate.FullName, key.FullName);
        }
        catch (Exception e) when (e is CryptographicException or UnauthorizedAccessException or ArgumentException)
        {
            throw new IOException($"cannot load the TLS certificate {certificate.FullName} with key {key.FullName}: {e.Message}", e);
        }
    }

    /// <summary>The certificates of a PEM file, to trust; null when no file was given.</summary>
    public static X509Certificate2Collection? LoadTrust(FileInfo? file)
    {
        if (file is null)
        {
            return null;
        }
        try
        {
            var trust = new X509Certificate2Collection();
            trust.ImportFromPemFile(file.FullName);
            return trust.Count > 0 ? trust : throw new IOException($"{file.FullName} holds no certificate");
        }
        catch (Exception e) when (e is CryptographicException or UnauthorizedAccessException or FileNotFoundException or DirectoryNotFoundException)
        {
            throw new IOException($"cannot read certificates to trust from {file.FullName}: {e.Message}", e);
        }
    }

    /// <summary>The token in a file (its first line, without surrounding white space); null when no file was given.</summary>
    public static string? ReadToken(FileInfo? file)
    {
        if (file is null)
        {
            return null;
        }
        string text;
        try
        {
            using var stream = file.OpenRead();
            var buffer = new byte[MaxTokenFileBytes];
            text = System.Text.Encoding.UTF8.GetString(buffer, 0, stream.ReadAtLeast(buffer, buffer.Length, throwOnEndOfStream: false));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"cannot read the token file {file.FullName}: {e.Message}", e);
        }
        var token = text.Split('\n')[0].Trim();
        if (token.Length == 0)
        {
            throw new IOException($"the token file {file.FullName} is empty");
        }
        if (System.Text.Encoding.UTF8.GetByteCount(token) > Wire.ProtocolLimits.MaxTokenBytes)
        {
            throw new IOException($"the token in {file.FullName} is longer than {Wire.ProtocolLimits.MaxTokenBytes} bytes");
        }
        return token;
    }
}
