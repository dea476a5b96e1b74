using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace FileProxy.IntegrationTests.Infrastructure;

public static class TestCertificates
{
    /// <summary>A self-signed certificate for 127.0.0.1 and localhost, with its private key, and a collection that
    /// trusts it.</summary>
    public static (X509Certificate2 Certificate, X509Certificate2Collection Trust) SelfSigned(string subject)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={subject}", key, HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        names.AddIpAddress(IPAddress.Loopback);
        names.AddDnsName("localhost");
        request.CertificateExtensions.Add(names.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        using var created = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1));
        // Through PEM, as the programs load it (--tls-cert / --tls-key).
        var certificate = X509Certificate2.CreateFromPem(created.ExportCertificatePem(), key.ExportPkcs8PrivateKeyPem());
        return (certificate, [X509CertificateLoader.LoadCertificate(certificate.RawData)]);
    }
}
