"""MagNET / IPEM test objects (IPEM Report 112): flood-field SNR, SNR map, uniformity, ghosting; slice width,
slice position and edge MTF."""
