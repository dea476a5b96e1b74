using System.Runtime.InteropServices;

namespace FileProxy.Protocol.Native;

/// <summary>
/// BLAKE3's reference C implementation (scripts/blake3.sh builds it from Debian's sources), which hashes about
/// 6 GB/s a core here against 3.3-4 GB/s for the managed <c>Blake3</c> package. The native executables link it in
/// statically and turn it on with the <c>FileProxy.NativeBlake3</c> switch (Directory.Build.targets); everywhere else
/// (<c>dotnet run</c>, a publish without a C compiler) the managed package hashes. Both compute the same function:
/// <c>NativeBlake3Tests</c> compares them.
/// </summary>
internal static unsafe partial class Blake3Native
{
    private const string Library = "blake3";

    /// <summary>Bytes of a <c>blake3_hasher</c>: 1,912 in BLAKE3 1.x's blake3.h. Allocated with room to spare, so
    /// that a later version's slightly larger state still fits.</summary>
    public const int StateBytes = 4096;

    /// <summary>Whether the programs hash with the C implementation: asked for by the switch, and loadable.</summary>
    public static bool Enabled { get; } = AppContext.TryGetSwitch("FileProxy.NativeBlake3", out var on) && on && IsLoadable();

    /// <summary>Whether the C implementation can be called in this process (the tests use it without the switch).</summary>
    public static bool IsLoadable()
    {
        try
        {
            return Marshal.PtrToStringAnsi((nint)Version()) is { Length: > 0 };
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return false;
        }
    }

    [LibraryImport(Library, EntryPoint = "blake3_version")]
    private static partial byte* Version();

    [LibraryImport(Library, EntryPoint = "blake3_hasher_init")]
    public static partial void Init(void* hasher);

    [LibraryImport(Library, EntryPoint = "blake3_hasher_update")]
    public static partial void Update(void* hasher, byte* input, nuint length);

    [LibraryImport(Library, EntryPoint = "blake3_hasher_finalize")]
    public static partial void Finalize(void* hasher, byte* output, nuint length);
}
