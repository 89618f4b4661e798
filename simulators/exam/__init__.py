"""A physical-exam vendor simulator (体检机构): US-K1, US-K2 and the US-H2..H5 pushes."""
