import { useLayoutEffect, useRef } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

// Layout effects: the canvas is made in the same commit as its box, so a chart that shows its
// points in the page is never an empty box waiting for the next frame.

/** One metric over steps, drawn on a canvas (uPlot); new points redraw without a remount. */
export function MetricChart(props: { name: string; steps: number[]; values: number[] }) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  useLayoutEffect(() => {
    if (!box.current) return;
    plot.current = new uPlot(
      {
        width: 560,
        height: 200,
        scales: { x: { time: false } },
        series: [{ label: "step" }, { label: props.name, stroke: "#2563eb", width: 2 }],
        axes: [{}, {}],
      },
      [props.steps, props.values],
      box.current,
    );
    return () => {
      plot.current?.destroy();
      plot.current = null;
    };
  }, [props.name]);
  useLayoutEffect(() => {
    plot.current?.setData([props.steps, props.values]);
  }, [props.steps, props.values]);
  return (
    <div class="chart" data-metric={props.name} data-points={props.steps.length}>
      <div class="chart-title">{props.name}</div>
      <div ref={box} />
    </div>
  );
}

const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea"];

/** Several series over time (x in seconds since the epoch), on one canvas (uPlot). */
export function TimeChart(props: {
  title: string;
  x: number[];
  series: { label: string; values: (number | null)[] }[];
  width?: number;
}) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const labels = props.series.map((s) => s.label).join("|");
  const data = (): uPlot.AlignedData => [props.x, ...props.series.map((s) => s.values)];
  useLayoutEffect(() => {
    if (!box.current) return;
    plot.current = new uPlot(
      {
        width: props.width ?? 560,
        height: 200,
        // One point alone would get a range of years: give it the minute before it.
        scales: { x: { range: (_u, min, max) => (min === max ? [min - 60, max + 1] : [min, max]) } },
        series: [
          { label: "time" },
          ...props.series.map((s, i) => ({
            label: s.label,
            stroke: COLORS[i % COLORS.length],
            width: 2,
            spanGaps: true,
          })),
        ],
      },
      data(),
      box.current,
    );
    return () => {
      plot.current?.destroy();
      plot.current = null;
    };
  }, [labels]);
  useLayoutEffect(() => {
    plot.current?.setData(data());
  }, [props.x, props.series]);
  return (
    <div class="chart" data-chart={props.title} data-points={props.x.length}>
      <div class="chart-title">{props.title}</div>
      <div ref={box} />
    </div>
  );
}
