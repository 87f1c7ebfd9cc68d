/*
 * TEST FIXTURE ONLY, never shipped: a stand-in for Windows'
 * bcryptprimitives.dll, so that Rust executables load under Wine 8.
 *
 * Why: Rust's standard library (1.78 and later) gets its random bytes from
 * ProcessPrng in bcryptprimitives.dll, which it imports at load time. Windows
 * 10 and later have it; Wine 8 (Debian 12) does not, so every Rust .exe dies
 * before main (status 53, "module not found"). scripts/windows builds this
 * file with x86_64-w64-mingw32-gcc and copies the DLL into the system32 of
 * the project's own Wine prefix (target/wine-prefix) for the unit tests; it
 * never goes near an MSI or a real Windows machine.
 *
 * ProcessPrng forwards to RtlGenRandom (SystemFunction036 of advapi32),
 * which Wine implements; it takes a ULONG length, so larger requests are
 * split. Like the real ProcessPrng, it reports success.
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    while (length > 0) {
        ULONG chunk = length > 0x40000000 ? 0x40000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}

BOOL WINAPI DllMain(HINSTANCE instance, DWORD reason, LPVOID reserved)
{
    (void)instance;
    (void)reason;
    (void)reserved;
    return TRUE;
}
