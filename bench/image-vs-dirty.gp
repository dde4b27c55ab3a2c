# SPDX-License-Identifier: GPL-2.0-or-later
# Image size (as a multiple of the guest's non-zero RAM) against the guest's dirty rate,
# live precopy against background snapshot, both VMMs. Variables (gnuplot -e): out, title,
# fbg, qbg, fpre, qpre (dirty MiB/s, image / non-zero, 1 if it converged).
set terminal pngcairo size 1000,700 font ',10'
set output out
set title title font ',11'
set grid
set key outside bottom center horizontal maxrows 3
set xlabel 'guest dirty rate while the copy ran (MiB/s of page writes: page steps/s x 4 KiB)'
set ylabel 'image size / guest non-zero RAM'
set yrange [0:*]
set offsets 2, 2, 0.5, 0
done(c, y) = (c == 1 ? y : 1/0)
notdone(c, y) = (c == 0 ? y : 1/0)
plot fbg  using 1:(done($3,$2)) with linespoints lw 2 pt 7 ps 1.5 lc rgb '#1f77b4' title 'frostvm background snapshot', \
     qbg  using 1:(done($3,$2)) with linespoints lw 2 pt 5 ps 1.3 lc rgb '#d62728' title 'QEMU 7.2 background snapshot', \
     fpre using 1:(done($3,$2)) with linespoints lw 2 dt 2 pt 9 ps 1.5 lc rgb '#1f77b4' title 'frostvm precopy', \
     qpre using 1:(done($3,$2)) with linespoints lw 2 dt 2 pt 11 ps 1.5 lc rgb '#d62728' title 'QEMU 7.2 precopy', \
     fpre using 1:(notdone($3,$2)) with points pt 8 ps 2.5 lc rgb '#1f77b4' title 'frostvm precopy: not converged in 10 s, written by then', \
     qpre using 1:(notdone($3,$2)) with points pt 10 ps 2.5 lc rgb '#d62728' title 'QEMU 7.2 precopy: not converged in 10 s, written by then', \
     fbg using 1:(done($3,$2)):4 with labels offset 0,-1.2 font ',9' notitle, \
     fpre using 1:2:4 with labels offset 0,1.2 font ',9' notitle, \
     qpre using 1:2:4 with labels offset 0,1.2 font ',9' tc rgb '#d62728' notitle
