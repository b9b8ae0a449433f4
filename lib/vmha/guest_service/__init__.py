"""ocf:vmha:GuestService: one service inside a guest, through the QEMU guest agent."""
