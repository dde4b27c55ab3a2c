# SPDX-License-Identifier: GPL-2.0-or-later
# Guest throughput and worst stall around one background snapshot, frostvm and QEMU on one
# chart. Variables (gnuplot -e): out, title, fdata, qdata (seconds since migrate, page
# steps/s, worst stall ms), fend, qend (seconds the snapshot ran on each VMM).
set terminal pngcairo size 1100,760 font ',10'
set output out
set multiplot layout 2,1 title title font ',11'
set grid
set key top right
set xlabel 'seconds since the migrate command'
xmax = (fend > qend ? fend : qend) + 1.0
set xrange [-2:xmax]
set object 1 rect from 0, graph 0 to fend, graph 1 fc rgb '#1f77b4' fs transparent solid 0.12 noborder
set object 2 rect from 0, graph 0 to qend, graph 1 fc rgb '#d62728' fs transparent solid 0.10 noborder
set ylabel 'guest page steps/s (thousands)'
set yrange [0:*]
plot fdata using 1:($2/1000) with fsteps lw 2 lc rgb '#1f77b4' title 'frostvm', \
     qdata using 1:($2/1000) with fsteps lw 2 lc rgb '#d62728' title 'QEMU 7.2'
set ylabel 'worst stall in each report (ms, log)'
set logscale y
set yrange [0.05:*]
plot fdata using 1:3 with fsteps lw 2 lc rgb '#1f77b4' title 'frostvm', \
     qdata using 1:3 with fsteps lw 2 lc rgb '#d62728' title 'QEMU 7.2'
unset multiplot
