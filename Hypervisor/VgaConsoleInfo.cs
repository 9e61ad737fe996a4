using Microhv.HAL;
using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor;

/// <summary>
/// The machine's screen as the boot loader left it (Xen's vga_console_info): VGA text mode 3 or a
/// linear framebuffer. The kernel fills it at boot; the domain builder copies it after the hardware
/// domain's start_info (Xen's fill_console_start_info), so Linux's vgacon or efifb takes the screen.
/// VideoType 0: no screen, and start_info's console.dom0 stays zero.
/// </summary>
public sealed class VgaConsoleInfo
{
    public byte VideoType;
    // Text mode 3.
    public ushort FontHeight, CursorX, CursorY, Rows, Columns;
    // Linear framebuffer.
    public ushort Width, Height, BytesPerLine, BitsPerPixel;
    public ulong LfbBase;
    public uint LfbSize64K;
    public byte RedPos, RedSize, GreenPos, GreenSize, BluePos, BlueSize, RsvdPos, RsvdSize;

    public bool Present => VideoType != 0;

    /// <summary>80x25 text, 16-line font (what a PC BIOS boots in), with the cursor where the screen's text ends.</summary>
    public void SetTextMode3(int cursorX, int cursorY)
    {
        Clear();
        VideoType = Dom0VgaConsoleInfo.XEN_VGATYPE_TEXT_MODE_3;
        FontHeight = 16;
        Columns = 80;
        Rows = 25;
        CursorX = (ushort)(cursorX < 0 ? 0 : cursorX >= Columns ? Columns - 1 : cursorX);
        CursorY = (ushort)(cursorY < 0 ? 0 : cursorY >= Rows ? Rows - 1 : cursorY);
    }

    /// <summary>
    /// A direct-colour framebuffer (the multiboot2 framebuffer tag, type 1): the UEFI GOP's when
    /// <paramref name="efi"/> (XEN_VGATYPE_EFI_LFB), a VESA mode's otherwise (XEN_VGATYPE_VESA_LFB).
    /// The reserved channel is the bits above the highest colour field, as a GOP's xRGB formats have.
    /// False (and nothing set) for a format the structure cannot describe: a zero or 16-bit-overflowing size.
    /// </summary>
    public bool SetLinearFramebuffer(bool efi, ulong address, uint pitch, uint width, uint height, byte bpp,
        byte redPos, byte redSize, byte greenPos, byte greenSize, byte bluePos, byte blueSize)
    {
        Clear();
        if (address == 0 || width == 0 || height == 0 || bpp == 0) return false;
        if (width > 0xFFFF || height > 0xFFFF || pitch > 0xFFFF) return false;
        VideoType = efi ? Dom0VgaConsoleInfo.XEN_VGATYPE_EFI_LFB : Dom0VgaConsoleInfo.XEN_VGATYPE_VESA_LFB;
        Width = (ushort)width;
        Height = (ushort)height;
        BytesPerLine = (ushort)pitch;
        BitsPerPixel = bpp;
        LfbBase = address;
        LfbSize64K = (uint)(((ulong)pitch * height + 0xFFFF) >> 16);
        RedPos = redPos; RedSize = redSize;
        GreenPos = greenPos; GreenSize = greenSize;
        BluePos = bluePos; BlueSize = blueSize;
        int top = redPos + redSize;
        if (greenPos + greenSize > top) top = greenPos + greenSize;
        if (bluePos + blueSize > top) top = bluePos + blueSize;
        if (top < bpp) { RsvdPos = (byte)top; RsvdSize = (byte)(bpp - top); }
        return true;
    }

    public void Clear()
    {
        VideoType = 0;
        FontHeight = CursorX = CursorY = Rows = Columns = 0;
        Width = Height = BytesPerLine = BitsPerPixel = 0;
        LfbBase = 0;
        LfbSize64K = 0;
        RedPos = RedSize = GreenPos = GreenSize = BluePos = BlueSize = RsvdPos = RsvdSize = 0;
    }

    /// <summary>Writes the dom0_vga_console_info (<see cref="Dom0VgaConsoleInfo.size"/> bytes) at <paramref name="address"/>.</summary>
    public void WriteTo(PhysicalMemory memory, ulong address)
    {
        for (int i = 0; i < Dom0VgaConsoleInfo.size; i += 8) memory.Write64(address + (ulong)i, 0);
        memory.Write8(address + Dom0VgaConsoleInfo.video_type, VideoType);
        if (VideoType == Dom0VgaConsoleInfo.XEN_VGATYPE_TEXT_MODE_3)
        {
            memory.Write16(address + Dom0VgaConsoleInfo.font_height, FontHeight);
            memory.Write16(address + Dom0VgaConsoleInfo.cursor_x, CursorX);
            memory.Write16(address + Dom0VgaConsoleInfo.cursor_y, CursorY);
            memory.Write16(address + Dom0VgaConsoleInfo.rows, Rows);
            memory.Write16(address + Dom0VgaConsoleInfo.columns, Columns);
            return;
        }
        memory.Write16(address + Dom0VgaConsoleInfo.width, Width);
        memory.Write16(address + Dom0VgaConsoleInfo.height, Height);
        memory.Write16(address + Dom0VgaConsoleInfo.bytes_per_line, BytesPerLine);
        memory.Write16(address + Dom0VgaConsoleInfo.bits_per_pixel, BitsPerPixel);
        memory.Write32(address + Dom0VgaConsoleInfo.lfb_base, (uint)LfbBase);
        memory.Write32(address + Dom0VgaConsoleInfo.lfb_size, LfbSize64K);
        memory.Write8(address + Dom0VgaConsoleInfo.red_pos, RedPos);
        memory.Write8(address + Dom0VgaConsoleInfo.red_size, RedSize);
        memory.Write8(address + Dom0VgaConsoleInfo.green_pos, GreenPos);
        memory.Write8(address + Dom0VgaConsoleInfo.green_size, GreenSize);
        memory.Write8(address + Dom0VgaConsoleInfo.blue_pos, BluePos);
        memory.Write8(address + Dom0VgaConsoleInfo.blue_size, BlueSize);
        memory.Write8(address + Dom0VgaConsoleInfo.rsvd_pos, RsvdPos);
        memory.Write8(address + Dom0VgaConsoleInfo.rsvd_size, RsvdSize);
        memory.Write32(address + Dom0VgaConsoleInfo.ext_lfb_base, (uint)(LfbBase >> 32));
    }
}
