namespace Microhv.Hypervisor.Public;

/// <summary>
/// xen/include/public/xen.h struct dom0_vga_console_info, as byte offsets: the hardware domain finds
/// it in its start_info page at console.dom0.info_off. The union u is 4-byte aligned (vesa_lfb holds
/// uint32_t fields), so it starts at offset 4 after the one-byte video_type.
/// </summary>
public static class Dom0VgaConsoleInfo
{
    public const byte XEN_VGATYPE_TEXT_MODE_3 = 0x03;
    public const byte XEN_VGATYPE_VESA_LFB = 0x23;
    public const byte XEN_VGATYPE_EFI_LFB = 0x70;

    public const int video_type = 0;        // uint8_t

    // u.text_mode_3
    public const int font_height = 4;       // uint16_t, pixels
    public const int cursor_x = 6;          // uint16_t, column
    public const int cursor_y = 8;          // uint16_t, row
    public const int rows = 10;             // uint16_t
    public const int columns = 12;          // uint16_t

    // u.vesa_lfb (also XEN_VGATYPE_EFI_LFB)
    public const int width = 4;             // uint16_t, pixels
    public const int height = 6;            // uint16_t
    public const int bytes_per_line = 8;    // uint16_t
    public const int bits_per_pixel = 10;   // uint16_t
    public const int lfb_base = 12;         // uint32_t, low 32 bits of the physical address
    public const int lfb_size = 16;         // uint32_t, in 64 KiB units
    public const int red_pos = 20, red_size = 21, green_pos = 22, green_size = 23;
    public const int blue_pos = 24, blue_size = 25, rsvd_pos = 26, rsvd_size = 27;   // uint8_t each
    public const int gbl_caps = 28;         // uint32_t, VESA capabilities
    public const int mode_attrs = 32;       // uint16_t, VESA mode attributes
    public const int pad = 34;              // uint16_t
    public const int ext_lfb_base = 36;     // uint32_t, high 32 bits of the physical address
    public const int size = 40;
}
