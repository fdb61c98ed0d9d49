"""Session replies: generated in the background, followed by any number of listeners, stored
when they end, and replayed exactly from the stored message afterwards."""
