"""Images: validation before decode, EXIF, derivatives, placeholders."""
