using Amazon.Runtime;
using Amazon.Runtime.CredentialManagement;

namespace FileProxy.Server;

/// <summary>
/// Finds S3 credentials the usual way, but only in places that need no network: AWS_ACCESS_KEY_ID and
/// AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN), else the profile AWS_PROFILE (or "default") of the shared
/// credentials file (~/.aws/credentials, or AWS_SHARED_CREDENTIALS_FILE). The SDK's own default chain would go on to
/// ask the EC2 instance metadata service over the network; an origin that finds no keys should say so instead.
/// </summary>
public static class S3Credentials
{
    public static AWSCredentials? Find(out string whereLooked)
    {
        var profile = Environment.GetEnvironmentVariable("AWS_PROFILE") is { Length: > 0 } named ? named : "default";
        whereLooked = $"AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or profile '{profile}' of the shared credentials file";
        if (Environment.GetEnvironmentVariable("AWS_ACCESS_KEY_ID") is { Length: > 0 })
        {
            return new EnvironmentVariablesAWSCredentials();
        }
        var file = Environment.GetEnvironmentVariable("AWS_SHARED_CREDENTIALS_FILE");
        var store = new SharedCredentialsFile(string.IsNullOrEmpty(file) ? SharedCredentialsFile.DefaultFilePath : file);
        return store.TryGetProfile(profile, out var found) && found.Options.AccessKey is { Length: > 0 }
            ? found.GetAWSCredentials(store)
            : null;
    }
}
