# SPDX-License-Identifier: GPL-2.0-or-later
# Worst stall in each report during a background snapshot, log scale, several runs on one
# chart. Variables (gnuplot -e): out, title, f1 (frostvm, small pool), f2 (frostvm, default
# pool), q1 (QEMU), f1end/f2end/q1end (seconds each snapshot ran); data files hold seconds
# since migrate, page steps/s, worst stall (ms).
set terminal pngcairo size 1100,520 font ',10'
set output out
set title title font ',11'
set grid
set key top right
set xlabel 'seconds since the migrate command'
xmax = (f1end > q1end ? f1end : q1end) + 1.0
set xrange [-1:xmax]
set ylabel 'worst stall in each 50 ms report (ms, log)'
set logscale y
set yrange [0.01:1000]
set arrow 1 from -1, 5 to xmax, 5 nohead dt 2 lc rgb '#555555'
set label 1 'target for a 16 MiB pool: 5 ms' at -0.9, 6.5 tc rgb '#555555'
plot f1 using 1:3 with steps lw 2 lc rgb '#1f77b4' title 'frostvm, 16 MiB pool', \
     f2 using 1:3 with steps lw 1 lc rgb '#2ca02c' title 'frostvm, default pool (128 MiB)', \
     q1 using 1:3 with steps lw 2 lc rgb '#d62728' title 'QEMU 7.2'
