namespace FileProxy.IntegrationTests.Infrastructure;

/// <summary>The checkout the tests run from, for files they read from it (docs, scripts).</summary>
public static class Repository
{
    public static string Root { get; } = Find();

    public static string Combine(params string[] parts) => Path.Join([Root, .. parts]);

    private static string Find()
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Join(directory.FullName, "FileProxy.sln")))
        {
            directory = directory.Parent;
        }
        return directory?.FullName ?? throw new DirectoryNotFoundException("no FileProxy.sln above the test assembly");
    }
}
